"""Bad input to files, jobs and auth: one clear line, the right status, and nothing left behind.

These run the real app in-process (FastAPI's TestClient, SQLite in a temp dir, executor off: no
job may start anyway). The auth tests build the app with a non-local host setting and the key in
the environment, which is exactly the configuration `nlp-transfer serve --host 0.0.0.0` runs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from nlp_transfer.errors import ConfigError
from nlp_transfer.service.app import create_app
from nlp_transfer.service.settings import ServiceSettings
from tests.service.conftest import tiny_job

KEY = "test-key-9f8e7d"


@pytest.fixture
def settings(tmp_path, service_assets) -> ServiceSettings:
    return ServiceSettings(
        state_dir=tmp_path / "state",
        data_roots=[str(service_assets["root"])],
        run_executor=False,
        max_upload_mb=0.05,
    )


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def nothing_left(client: TestClient, settings: ServiceSettings) -> None:
    assert client.get("/v1/fine_tuning/jobs").json()["data"] == []
    assert not settings.jobs_dir.exists() or not any(settings.jobs_dir.iterdir())
    files = [p for p in settings.files_dir.rglob("*") if p.is_file()] if settings.files_dir.exists() else []
    assert files == []


def create(client: TestClient, config: dict, **extra):
    return client.post("/v1/fine_tuning/jobs", json={"config": config, **extra})


def test_unknown_config_key_is_422_with_did_you_mean(client, settings, service_assets) -> None:
    r = create(client, {**tiny_job(service_assets), "learning_rate": 1e-3})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("unknown config key 'learning_rate'; did you mean")
    nothing_left(client, settings)


def test_config_error_is_the_same_line_as_the_cli(client, settings, service_assets, tmp_path, capsys) -> None:
    from nlp_transfer import cli

    bad = {**tiny_job(service_assets), "lr_shedule": "cosine"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert cli.main(["train", "--config", str(path)]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("error: ")
    r = create(client, bad)
    assert r.status_code == 422 and r.json()["detail"] == cli_line
    assert "did you mean 'lr_schedule'" in cli_line


def test_bad_config_value_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets, batch_size="many"))
    assert r.status_code == 422 and r.json()["detail"] == "config key 'batch_size': cannot read 'many' as int"
    r = create(client, tiny_job(service_assets, lr_schedule="cosin"))
    assert r.status_code == 422 and "did you mean 'cosine'" in r.json()["detail"]
    nothing_left(client, settings)


def test_service_managed_key_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets, output_dir="/tmp/elsewhere"))
    assert r.status_code == 422 and "output_dir" in r.json()["detail"]
    nothing_left(client, settings)


def test_trust_remote_code_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets, trust_remote_code=True))
    assert r.status_code == 422 and "trust_remote_code" in r.json()["detail"]
    nothing_left(client, settings)


def test_unknown_model_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets, model="minilm-l7"))
    assert r.status_code == 422 and "did you mean 'minilm-l6'" in r.json()["detail"].lower()
    nothing_left(client, settings)


def test_unknown_method_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets, method="lroa"))
    assert r.status_code == 422 and "unknown method 'lroa'" in r.json()["detail"]
    nothing_left(client, settings)


def test_unknown_dataset_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets, dataset="rotten_tomatos"))
    assert r.status_code in (403, 422)
    r = create(client, tiny_job(service_assets, dataset=str(service_assets["root"] / "no_such.csv")))
    assert r.status_code == 422 and "not found" in r.json()["detail"]
    nothing_left(client, settings)


def test_dataset_failing_validation_is_422(client, settings, service_assets) -> None:
    bad = service_assets["root"] / "bad_labels"
    bad.mkdir(exist_ok=True)
    (bad / "train.csv").write_text("text,stars\ngood film,5\nbad film,1\n")
    r = create(client, tiny_job(service_assets, dataset=str(bad)))
    assert r.status_code == 422
    assert (
        r.json()["detail"]
        == "the train split has no column 'label' (columns: text, stars); set text_column/label_column/summary_column"
    )
    nothing_left(client, settings)


def test_unknown_accelerate_config_is_422(client, settings, service_assets) -> None:
    r = create(client, tiny_job(service_assets), accelerate_config="cpu_dpp.yaml")
    assert r.status_code == 422 and "did you mean 'cpu_ddp.yaml'" in r.json()["detail"]
    r = create(client, tiny_job(service_assets), accelerate_config="../../etc/passwd")
    assert r.status_code == 422
    nothing_left(client, settings)


def test_dataset_outside_data_roots_is_403(client, settings, tmp_path) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "train.csv").write_text("text,label\na,x\nb,y\n")
    r = create(client, {"dataset": str(outside), "max_steps": 1})
    assert r.status_code == 403 and "outside the service's data roots" in r.json()["detail"]
    nothing_left(client, settings)


def test_path_traversal_out_of_a_data_root_is_403(client, settings, service_assets) -> None:
    sneaky = f"{service_assets['root']}/../../../etc"
    assert create(client, {"dataset": sneaky, "max_steps": 1}).status_code == 403
    link = service_assets["root"] / "escape"
    if not link.exists():
        os.symlink("/etc", link)
    assert create(client, {"dataset": str(link), "max_steps": 1}).status_code == 403  # symlinks are followed
    assert create(client, {"dataset": "~/../../etc", "max_steps": 1}).status_code == 403
    nothing_left(client, settings)


def test_reused_idempotency_key_with_other_body_is_409(client, settings, service_assets) -> None:
    headers = {"Idempotency-Key": "abc-1"}
    first = client.post("/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets)}, headers=headers)
    assert first.status_code == 201
    again = client.post("/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets)}, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = client.post(
        "/v1/fine_tuning/jobs", json={"config": tiny_job(service_assets, seed=7)}, headers=headers
    )
    assert other.status_code == 409 and "abc-1" in other.json()["detail"]
    assert [j["id"] for j in client.get("/v1/fine_tuning/jobs").json()["data"]] == [first.json()["id"]]


def test_unknown_job_is_404(client) -> None:
    for method, path in (
        ("get", ""),
        ("post", "/cancel"),
        ("post", "/resume"),
        ("get", "/events"),
        ("get", "/checkpoints"),
        ("get", "/logs"),
    ):
        r = getattr(client, method)(f"/v1/fine_tuning/jobs/ftjob-nope{path}")
        assert r.status_code == 404 and r.json()["detail"] == "no fine-tuning job 'ftjob-nope'", (
            path,
            r.text,
        )


def test_unknown_training_file_is_404(client, settings, service_assets) -> None:
    r = client.post("/v1/fine_tuning/jobs", json={"config": {"max_steps": 1}, "training_file": "file-nope"})
    assert r.status_code == 404 and "file-nope" in r.json()["detail"]
    nothing_left(client, settings)


def test_cancel_of_a_finished_job_is_409(client, settings, service_assets) -> None:
    job_id = create(client, tiny_job(service_assets)).json()["id"]
    assert (
        client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    )  # queued: at once
    r = client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
    assert (
        r.status_code == 409
        and r.json()["detail"] == f"job {job_id} is cancelled; only queued or running jobs can be cancelled"
    )


def upload(client: TestClient, name: str, data: bytes, **form):
    return client.post("/v1/files", files={"file": (name, io.BytesIO(data))}, data=form)


def test_oversize_upload_is_413(client, settings) -> None:
    row = b"a fine film,positive\n"
    r = upload(client, "big.csv", b"text,label\n" + row * 5000)  # ~100 kB > 0.05 MB
    assert r.status_code == 413 and "limit of 0.05 MB" in r.json()["detail"]
    nothing_left(client, settings)


def test_unreadable_upload_is_422(client, settings) -> None:
    r = upload(client, "data.parquet", b"this is not parquet at all")
    assert r.status_code == 422 and r.json()["detail"].startswith("data.parquet: could not read")
    nothing_left(client, settings)


def test_upload_of_unsupported_type_is_422(client, settings) -> None:
    r = upload(client, "model.pkl", b"\x80\x04junk")
    assert r.status_code == 422 and "unsupported file type '.pkl'" in r.json()["detail"]
    nothing_left(client, settings)


def test_upload_failing_validation_is_422(client, settings) -> None:
    r = upload(client, "reviews.csv", b"text,label\ngreat,positive\nawful,positive\n")
    assert (
        r.status_code == 422
        and r.json()["detail"]
        == "reviews.csv: classification needs at least 2 labels; column 'label' has only ['positive']"
    )
    nothing_left(client, settings)


def test_valid_upload_becomes_a_jobs_dataset(client, settings, service_assets) -> None:
    data = (service_assets["data"] / "train.csv").read_bytes()
    r = upload(client, "../../evil name.csv", data)
    assert r.status_code == 201, r.text
    file = r.json()
    assert file["filename"] == "evil_name.csv" and file["rows"] == 192
    cfg = {k: v for k, v in tiny_job(service_assets).items() if k != "dataset"}
    r = client.post("/v1/fine_tuning/jobs", json={"config": cfg, "training_file": file["id"]})
    assert r.status_code == 201, r.text
    job = client.get(f"/v1/fine_tuning/jobs/{r.json()['id']}").json()
    assert Path(job["config"]["dataset"]).parent.parent == settings.files_dir.resolve()


@pytest.fixture
def keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("NLP_TRANSFER_API_KEY", KEY)
    settings = ServiceSettings(host="0.0.0.0", state_dir=tmp_path / "state", run_executor=False)
    with TestClient(create_app(settings)) as c:
        yield c


def test_missing_api_key_on_non_local_bind_is_401(keyed) -> None:
    for path in ("/healthz", "/v1/fine_tuning/jobs", "/docs", "/openapi.json"):
        r = keyed.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
    assert keyed.post("/v1/fine_tuning/jobs", json={"config": {}}).status_code == 401


def test_wrong_api_key_on_non_local_bind_is_401(keyed) -> None:
    assert keyed.get("/healthz", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert keyed.get("/healthz", headers={"Authorization": KEY}).status_code == 401  # no scheme
    assert keyed.get("/healthz", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/docs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_non_local_bind_without_key_refuses_to_start(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NLP_TRANSFER_API_KEY", raising=False)
    with pytest.raises(
        ConfigError,
        match="binding 0.0.0.0 needs an API key: set the environment variable NLP_TRANSFER_API_KEY",
    ):
        create_app(ServiceSettings(host="0.0.0.0", state_dir=tmp_path / "state"))
    assert not (tmp_path / "state").exists()
