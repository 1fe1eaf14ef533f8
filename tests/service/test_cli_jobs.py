"""`nlp-transfer jobs ...` against the session's live server: the CLI's main() runs in-process (one
real subprocess checks the installed entry point and its exit code), so what is tested is the client
talking HTTP to a real server on PostgreSQL that runs real tiny jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from nlp_transfer.cli import main
from nlp_transfer.service.client import Client
from nlp_transfer.service.jobs_cli import apply_set
from tests.service.conftest import REPO, finished, free_port, tiny_job, wait_for


def run_cli(capsys: pytest.CaptureFixture, server_url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["jobs", "--server", server_url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_set_types_and_nests() -> None:
    base = {"method": "lora", "method_args": {"r": 8, "lora_alpha": 16}}
    out = apply_set(
        base, ["max_steps=50", "lr=0.0001", "method_args.r=4", "labels=[neg, pos]", "test_split=null"]
    )
    assert out == {
        "method": "lora", "method_args": {"r": 4, "lora_alpha": 16}, "max_steps": 50, "lr": 1e-4,
        "labels": ["neg", "pos"], "test_split": None,
    }  # fmt: skip
    assert base["method_args"]["r"] == 8  # the file's mapping is not changed in place


def test_create_follow_get_list_logs_then_the_registered_model(
    server, service_assets, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = {**tiny_job(service_assets), "output_dir": "runs/mine"}  # as a recipe file has it
    config.pop("max_steps")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    key = f"cli-{uuid.uuid4().hex[:8]}"
    args = (
        "create",
        "--config",
        str(path),
        "--set",
        "max_steps=8",
        "--set",
        "eval_every=4",
        "--idempotency-key",
        key,
    )
    code, out, err = run_cli(capsys, server.url, *args)
    assert code == 0, err
    assert "ignoring 'output_dir'" in err  # the service owns it; the recipe file still works unchanged
    job_id = json.loads(out)["id"]
    assert json.loads(run_cli(capsys, server.url, *args)[1])["id"] == job_id  # same key: same job

    code, out, err = run_cli(capsys, server.url, "events", job_id, "--follow")
    assert code == 0 and f"job {job_id}: succeeded" in err
    events = [json.loads(line) for line in out.splitlines()]
    types = [e["type"] for e in events]
    assert types[-1] == "succeeded" and "step" in types and "eval" in types
    assert [e["data"]["step"] for e in events if e["type"] == "step"][
        -1
    ] == 8  # the --set value reached the job

    job = json.loads(run_cli(capsys, server.url, "get", job_id)[1])
    assert job["status"] == "succeeded" and job["config"]["max_steps"] == 8 and job["model_id"]
    listed = run_cli(capsys, server.url, "list", "--limit", "100")[1]
    assert any(line.startswith(job_id) and "succeeded" in line for line in listed.splitlines())
    code, logs, _ = run_cli(capsys, server.url, "logs", job_id)
    assert code == 0 and logs.strip()
    code, _, err = run_cli(capsys, server.url, "cancel", job_id)
    assert code == 2 and err.count("\n") == 1 and "409" in err  # a finished job cannot be cancelled

    # the succeeded job registered its run; deleting that model removes the job's run directory
    with Client(server.url) as client:
        model = client.get_model(job["model_id"])
        assert (model["source"], model["job_id"]) == ("job", job_id)
        assert model["metrics"]["test"] == job["test_metrics"]
        assert any(m["id"] == model["id"] for m in client.list_models(limit=500)["data"])
        removed = Path(client.delete_model(model["id"])["files_removed"])
    assert server.state_dir.resolve() in removed.parents and not removed.exists()


def test_bad_input_is_one_line_and_non_zero(server, service_assets, tmp_path: Path, capsys) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(tiny_job(service_assets)))
    code, out, err = run_cli(capsys, server.url, "create", "--config", str(path), "--set", "epocs=3")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: 422: ") and "epocs" in err and "epochs" in err  # the API's did-you-mean
    capsys.readouterr()
    code = main(["jobs", "get", "ftjob-nope", "--server", server.url])  # --server after the command works too
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: 404: ")
    for args, expected in (
        (("create", "--config", str(tmp_path / "nope.yaml")), "cannot read config"),
        (("create", "--config", str(path), "--set", "max_steps"), "expected key=value"),
        (("create", "--config", str(path), "--training-file", str(tmp_path / "none.csv")), "does not exist"),
    ):
        code, _, err = run_cli(capsys, server.url, *args)
        assert code == 2 and expected in err and err.count("\n") == 1, err
    code, _, err = run_cli(capsys, f"http://127.0.0.1:{free_port()}", "list")
    assert code == 2 and "cannot reach the service" in err and err.count("\n") == 1


def test_upload_push_to_hub_and_cancel(server, service_assets, tmp_path: Path, capsys) -> None:
    config = tiny_job(service_assets, max_steps=400)  # its dataset gives way to the uploaded file
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    code, out, err = run_cli(
        capsys, server.url, "create", "--config", str(path),
        "--training-file", str(service_assets["data"] / "train.csv"),
        "--push-to-hub", "someone/tiny-sentiment", "--accelerate-config", "cpu.yaml",
    )  # fmt: skip
    assert code == 0, err
    assert "uploaded" in err and "ignoring 'dataset'" in err
    job_id = json.loads(out)["id"]
    code, out, _ = run_cli(capsys, server.url, "cancel", job_id)
    assert code == 0
    with Client(server.url) as client:
        job = wait_for(client._http, job_id, finished)
    assert job["status"] == "cancelled"
    assert job["training_file"] and job["accelerate_config"] == "cpu.yaml"
    assert job["config"]["push_to_hub"] is True and job["config"]["hub_repo_id"] == "someone/tiny-sentiment"


def test_entry_point_exit_code(server) -> None:
    """The real `python -m nlp_transfer.cli jobs` process: a 404 is one stderr line and exit code 2."""
    env = {**os.environ, "NLP_TRANSFER_SERVER": server.url}
    ok = subprocess.run([sys.executable, "-m", "nlp_transfer.cli", "jobs", "list", "--json"],
                        capture_output=True, text=True, cwd=REPO, env=env, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and json.loads(ok.stdout)["object"] == "list"
    bad = subprocess.run([sys.executable, "-m", "nlp_transfer.cli", "jobs", "get", "ftjob-missing"],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: 404: ")
