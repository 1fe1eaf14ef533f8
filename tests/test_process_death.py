"""A run that really dies (SIGKILL, or a hard exit in the middle of writing a checkpoint) resumes to
exactly what an uninterrupted run gives: the same quality metrics and bit-identical weights.

Three subprocesses in all (each pays the torch import): the recipe killed mid-run, the recipe
resumed in a fresh process, and the recipe hard-exiting inside a checkpoint save through the
test-only fault point of training/checkpoint.py. The uninterrupted reference runs in-process with
the same parsed command line, on one thread everywhere so that float sums add up in the same order.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlp_transfer.config import parse_config
from nlp_transfer.pipeline import run
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.training.checkpoint import FAULT_ENV, FAULT_EXIT_CODE, checkpoint_dirs

ROOT = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY, BATCH = 150, 10, 4  # 48 batches an epoch: no checkpoint falls on an epoch boundary
QUALITY = ("accuracy", "macro_f1", "loss", "per_class", "confusion_matrix", "examples")


pytestmark = pytest.mark.usefixtures("one_thread")


def recipe_args(tiny_models: dict, review_csv: Path, out: Path) -> list[str]:
    """The classify recipe's command line: full fine-tuning (every weight and its Adam state must come back)."""
    return [
        "--config", "recipes/configs/sentiment_minilm_lora.yaml", "--model", str(tiny_models["bert"]),
        "--dataset", str(review_csv), "--method", "full", "--method_args", "{}", "--lr", "2e-3",
        "--max_steps", str(STEPS), "--save_every", str(SAVE_EVERY), "--eval_every", "25", "--keep_checkpoints", "2",
        "--batch_size", str(BATCH), "--eval_batch_size", "48", "--max_length", "32", "--precision", "fp32",
        "--report_to", "none", "--output_dir", str(out),
    ]  # fmt: skip


def start_recipe(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "recipes/classify.py", *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def assert_same_run(resumed_dir: Path, reference_dir: Path) -> None:
    """Quality metrics and every weight equal, bit for bit; the validation history too."""
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (resumed_dir, reference_dir))
    for key in QUALITY:
        assert got["test"][key] == want["test"][key], key
    assert got["best"] == want["best"]
    strip = lambda h: {k: v for k, v in h.items() if "time" not in k and "latency" not in k}  # noqa: E731
    assert [strip(h) for h in got["history"]] == [strip(h) for h in want["history"]]
    a, b = weights(resumed_dir), weights(reference_dir)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def reference(tiny_models: dict, review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run, in-process, from the very command line the subprocesses get."""
    out = tmp_path_factory.mktemp("death") / "reference"
    metrics = run(parse_config(TrainConfig, recipe_args(tiny_models, review_csv, out)))
    assert metrics["train"]["steps"] == STEPS and metrics["test"]["accuracy"] >= 0.9  # it learned something
    return out


def test_sigkill_mid_run_then_resume_in_a_fresh_process_matches(
    reference: Path, tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    args = recipe_args(tiny_models, review_csv, out)
    proc = start_recipe(args)
    deadline = time.monotonic() + 240
    while not checkpoint_dirs(out / "checkpoints"):  # wait for a finished checkpoint, then kill
        assert proc.poll() is None, f"the run ended before it was killed: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists() and not (out / "nlp_transfer.json").exists()  # it died mid-run

    resumed = start_recipe([*args, "--resume"])
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-3000:]
    started = [line for line in stderr.splitlines() if "resumed at step" in line]
    assert len(started) == 1, stderr[-3000:]
    step = int(started[0].split("resumed at step")[1].split()[0])
    assert 0 < step < STEPS and step % SAVE_EVERY == 0, started[0]
    # the fresh process trained only the steps after the checkpoint (full batches: 192 = 48 x 4)
    assert json.loads((out / "metrics.json").read_text())["train"]["samples"] == (STEPS - step) * BATCH
    assert_same_run(out, reference)


def test_kill_while_writing_a_checkpoint_resumes_from_the_previous_one(
    reference: Path, tiny_models: dict, review_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, dies_at = tmp_path / "torn", 2 * SAVE_EVERY
    args = recipe_args(tiny_models, review_csv, out)
    proc = start_recipe(args, **{FAULT_ENV: f"checkpoint_write:{dies_at}"})
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == FAULT_EXIT_CODE, stderr[-3000:]
    ckpts = out / "checkpoints"
    torn = ckpts / f".tmp-step-{dies_at}"
    assert [p.name for p in checkpoint_dirs(ckpts)] == [f"step-{SAVE_EVERY}"]
    assert torn.is_dir() and any(torn.iterdir()), "the fault point must fire with a half-written checkpoint"
    assert not (torn / "loop_state.json").exists()

    with caplog.at_level(logging.INFO, logger="nlp_transfer"):
        metrics = run(parse_config(TrainConfig, [*args, "--resume"]))
    assert f"resumed at step {SAVE_EVERY} " in caplog.text  # the complete checkpoint, not the torn one
    assert f"deleted .tmp-step-{dies_at}" in caplog.text
    assert metrics["train"]["samples"] == (STEPS - SAVE_EVERY) * BATCH
    assert not [p for p in ckpts.iterdir() if p.name.startswith(".tmp")]
    assert_same_run(out, reference)
