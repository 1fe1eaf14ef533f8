"""The recipe and the console command, run as a user runs them: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(900)  # three subprocesses, each bounded at 300 s by _run
def test_recipe_end_to_end_then_cli_predict_and_eval(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = _run([
        sys.executable, "recipes/classify.py", "--config", "recipes/configs/sentiment_minilm_lora.yaml",
        "--model", str(tiny_models["bert"]), "--dataset", str(review_csv), "--method", "full", "--method_args", "{}", "--lr", "5e-3",
        "--epochs", "4", "--batch_size", "16", "--precision", "fp32", "--report_to", "none", "--output_dir", str(out),
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test accuracy" in result.stdout and str(out) in result.stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["examples"] == 48 and saved["test"]["accuracy"] >= 0.9, saved["test"]

    pred = _run(
        [
            sys.executable,
            "-m",
            "nlp_transfer.cli",
            "predict",
            str(out),
            "--text",
            "a wonderful moving film",
            "--text",
            "dull and lifeless",
        ]
    )
    assert pred.returncode == 0, pred.stderr[-2000:]
    rows = [json.loads(line) for line in pred.stdout.splitlines() if line.startswith("{")]
    assert [r["label"] for r in rows] == ["positive", "negative"]

    ev = _run([sys.executable, "-m", "nlp_transfer.cli", "eval", str(out)])
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout)["accuracy"] == pytest.approx(saved["test"]["accuracy"], abs=1e-9)


def test_config_typo_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = _run(
        [
            sys.executable,
            "recipes/classify.py",
            "--config",
            "recipes/configs/sentiment_minilm_lora.yaml",
            "--lerning_rate",
            "1e-3",
            "--output_dir",
            str(tmp_path / "o"),
        ]
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown option --lerning_rate")
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


def test_cli_lists_methods() -> None:
    result = _run([sys.executable, "-m", "nlp_transfer.cli", "methods"])
    assert result.returncode == 0 and "lora" in result.stdout and "top_k" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)  # above the recipe subprocess's own 1500 s limit
def test_real_minilm_lora_end_to_end(tmp_path: Path) -> None:
    """The README's default recipe on the shipped MiniLM-L6 and Rotten Tomatoes, cut to a few minutes."""
    out = tmp_path / "rt"
    result = _run([
        sys.executable, "recipes/classify.py", "--config", "recipes/configs/sentiment_minilm_lora.yaml",
        "--max_train_samples", "1500", "--max_eval_samples", "400", "--epochs", "1", "--lr", "3e-3",
        "--report_to", "none", "--output_dir", str(out),
    ], timeout=1500)  # fmt: skip
    # 47 steps is a short budget: at the config's LR both LoRA and full fine-tuning (5e-5) are still
    # at the majority class there (measured 0.57); 3e-3 gets to 0.75. On the whole split (638
    # steps) 3e-3 diverges back to the majority class, which is why the config keeps its lower LR.
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.65, metrics["test"]  # majority class is 0.578
    assert (out / "adapter_model.safetensors").exists()
