"""The run directory has one owner (nlp_transfer/rundir.py): old runs load, bad ones fail in one line,
writes are atomic with the meta file last, and one process writes a run directory at a time."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_config
from nlp_transfer import rundir
from nlp_transfer.card import render_card
from nlp_transfer.errors import CheckpointError, ConfigError
from nlp_transfer.hub import select_files
from nlp_transfer.predict import load_predictor
from nlp_transfer.rundir import META_FILE, RunDir, RunLockedError

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["a charming and moving story", "dull, tedious and messy"]


def old_export(tiny_bert: Path, out: Path, *, format_version: int | None) -> torch.nn.Module:
    """A run directory written the way export.py wrote it before rundir.py existed (commit ce38fcb):
    save_pretrained + tokenizer, `yaml.safe_dump(config, sort_keys=False)`, `json.dumps(indent=2)`,
    and nlp_transfer.json with format_version 1 first (or, older still, no format_version at all)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = ["negative", "positive"]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert,
        num_labels=2,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    ).eval()
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(out)
    (out / "run_config.yaml").write_text(
        yaml.safe_dump({"model": str(tiny_bert), "max_length": 32}, sort_keys=False)
    )
    metrics = {"test": {"accuracy": 0.75, "macro_f1": 0.7, "per_class": {}}, "train": {"steps": 3}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    meta = {"format_version": format_version} if format_version is not None else {}
    meta |= {"task": "classification", "method": "full", "is_peft": False, "base_model": str(tiny_bert)}
    meta |= {
        "base_model_hub_id": None,
        "base_fingerprint": {"model_type": "bert"},
        "dataset": "rotten_tomatoes",
    }
    meta |= {
        "trainable_params": 10,
        "total_params": 10,
        "labels": labels,
        "created": "2026-12-01T00:00:00+00:00",
    }
    (out / "nlp_transfer.json").write_text(json.dumps(meta, indent=2) + "\n")
    return model


@pytest.mark.parametrize("format_version", [1, None], ids=["format-1", "before-format_version"])
def test_runs_written_by_the_old_export_load_unchanged(
    format_version: int | None, tiny_models: dict, tmp_path: Path
) -> None:
    out = tmp_path / "old"
    model = old_export(tiny_models["bert"], out, format_version=format_version)
    run = RunDir(out)
    assert run.is_finished() and run.task == "classification" and run.labels == ["negative", "positive"]
    assert run.config()["max_length"] == 32 and run.metrics()["test"]["accuracy"] == 0.75
    run.require_safetensors()
    predictor = load_predictor(str(out))  # predict reads it through RunDir
    assert predictor.max_length == 32
    tok = predictor.tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(predictor.logits(TEXTS), model(**tok).logits, rtol=0, atol=1e-6)
    assert "| accuracy | 0.7500 |" in render_card(out)
    assert {"model.safetensors", "config.json", META_FILE} <= set(select_files(out))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "nlp_transfer.json is missing"),
        ("{not json", "is corrupt"),
        ("[1, 2]", "should hold a JSON object"),
        ('{"format_version": 2, "task": "classification"}', "newer nlp-transfer (format 2"),
        ('{"format_version": "one", "task": "classification"}', "unknown format_version 'one'"),
        ('{"format_version": 1}', "names no task"),
    ],
)
def test_bad_meta_is_one_clear_line(content: str | None, expected: str, tmp_path: Path) -> None:
    if content is not None:
        (tmp_path / META_FILE).write_text(content)
    with pytest.raises(CheckpointError, match=re.escape(expected)) as info:
        RunDir(tmp_path).meta()
    assert "\n" not in str(info.value)
    if content == "{not json":
        assert isinstance(info.value.__cause__, json.JSONDecodeError)  # the chain is kept


def test_corrupt_config_and_metrics_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "run_config.yaml").write_text("model: [unclosed\n")
    (tmp_path / "metrics.json").write_text("{")
    with pytest.raises(CheckpointError, match="run_config.yaml is corrupt"):
        RunDir(tmp_path).config()
    with pytest.raises(CheckpointError, match="metrics.json is corrupt"):
        RunDir(tmp_path).metrics()
    assert RunDir(tmp_path / "absent").config() == {} and RunDir(tmp_path / "absent").metrics() == {}


@pytest.mark.parametrize("name", ["adapter_model.bin", "pytorch_model.pt", "x.pkl", "rng.pth", "last.ckpt"])
def test_pickle_weights_refuse_loading(name: str, tiny_models: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    old_export(tiny_models["bert"], out, format_version=1)
    (out / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match=f"{re.escape(name)} .*pickle files are never loaded") as info:
        load_predictor(str(out))
    assert "\n" not in str(info.value)
    (out / name).unlink()
    (out / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="only safetensors weights are loaded .* has none"):
        RunDir(out).require_safetensors()


def test_publish_moves_the_meta_file_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "checkpoints").mkdir()
    staged = run.staging()
    staged.write_meta({"task": "classification"})
    staged.write_metrics({"test": {"accuracy": 1.0}})
    staged.write_config({"lr": 0.1})
    (staged.path / "model.safetensors").write_bytes(b"w")
    assert not run.is_finished()
    moved: list[str] = []
    real_replace = os.replace

    def record(src: str | Path, dst: str | Path) -> None:
        moved.append(Path(dst).name)
        if Path(dst).name == META_FILE:  # everything else is in place when the meta file arrives
            assert {"metrics.json", "run_config.yaml", "model.safetensors"} <= {
                p.name for p in run.path.iterdir()
            }
        real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", record)
    run.publish(staged)
    assert moved[-1] == META_FILE and len(moved) == 4
    assert run.is_finished() and run.meta()["format_version"] == rundir.FORMAT_VERSION
    assert not run.export_tmp.exists() and (run.path / "checkpoints").is_dir()


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunDir(tmp_path)
    run.write_json("metrics.json", {"a": 1})

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(rundir.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        run.write_json("metrics.json", {"a": 2})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


HOLDER = textwrap.dedent(
    """
    import sys, time
    from nlp_transfer.rundir import RunDir
    with RunDir(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_second_writer_is_refused_at_once(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    """A run holding the lock (another process) makes `run()` on the same output_dir fail at once;
    the lock dies with its holder, even on SIGKILL, and the run then goes through."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        from nlp_transfer.pipeline import run

        cfg = tiny_config(tiny_models["bert"], review_csv, out, max_steps=2)
        with pytest.raises(RunLockedError, match=re.escape(str(out))) as info:
            run(cfg)
        assert "\n" not in str(info.value)
        assert [p.name for p in out.iterdir()] == [rundir.LOCK_FILE]  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    run(cfg)
    assert RunDir(out).is_finished()


def test_two_writers_in_one_process_and_nothing_left_behind(tmp_path: Path) -> None:
    target = RunDir(tmp_path / "new" / "run")
    with target.lock():
        with pytest.raises(RunLockedError, match="being written by another process"):
            with RunDir(target.path).lock():
                pass
    assert not target.path.exists()  # created for the lock, nothing written: removed again
    with target.lock():
        target.write_text("notes.txt", "x")
    # the lock file stays beside a written run (deleting it could let a waiting writer lock a stale inode);
    # it is a dot-file, so it is never published
    assert sorted(p.name for p in target.path.iterdir()) == [rundir.LOCK_FILE, "notes.txt"]
    assert target.published_files() == ["notes.txt"]


def test_bad_input_through_run_leaves_no_directory(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    from nlp_transfer.pipeline import run

    out = tmp_path / "typo"
    with pytest.raises(ConfigError):
        run(tiny_config(tiny_models["bert"], review_csv, out, method="lorra"))
    assert not out.exists()


def test_find_runs_skips_local_state(tmp_path: Path) -> None:
    for sub in ("a", "b/c", "a/checkpoints/step-1", ".export-tmp", "logs/x"):
        RunDir(tmp_path / sub).write_meta({"task": "classification"})
    assert sorted(r.path.relative_to(tmp_path).as_posix() for r in rundir.find_runs(tmp_path)) == ["a", "b/c"]


def test_run_directory_file_names_are_spelled_only_in_rundir() -> None:
    """Issue 15: one module owns the layout. A quoted file name anywhere else is a second owner.

    "logs" is also a word of the jobs CLI, so for it only a path join (`dir / "logs"`) counts."""
    names = ("nlp_transfer.json", "run_config.yaml", "metrics.json", ".export-tmp", "events.jsonl",
             "checkpoints", "samples.jsonl")  # fmt: skip
    quoted = [f"[\"']{re.escape(n)}[\"']" for n in names]
    pattern = re.compile("|".join([*quoted, r"/\s*[\"']logs[\"']"]))
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for folder in ("nlp_transfer", "demo")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "rundir.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
    assert len(re.findall(r'^META_FILE = "', (ROOT / "nlp_transfer/rundir.py").read_text(), re.M)) == 1
