"""Every config in recipes/configs/ and recipes/configs/transfer/ runs as shipped (its own precision,
method, task, recipe and model family) at toy scale, validates at least once (generating where the
task generates) and ends with metrics. The matrix and its overrides live in tests/shipped_configs.py.

This is the guard for issue 14's crash: summarize_smollm2_lora.yaml under precision auto (bf16 on
this CPU) stored the frozen LoRA base in bf16 and crashed at its first generation, while the decoder
tests, which force fp32, stayed green.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlp_transfer.training.precision import resolve
from tests.shipped_configs import CONFIGS, build_tiny_models, config_id, recipe_of, run_shipped, toy_config


@pytest.fixture(scope="module")
def shipped_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("shipped_models"))


def test_the_matrix_covers_both_config_directories() -> None:
    ids = {config_id(p) for p in CONFIGS}
    assert "summarize_smollm2_lora.yaml" in ids and "transfer/distill_rt_minilm.yaml" in ids
    assert len(ids) == len(CONFIGS) >= 13


def _train_configs(shipped: dict[str, Any]) -> list[dict[str, Any]]:
    """The TrainConfig mappings of a shipped config (top level, or train/pretrain/finetune)."""
    if "task" in shipped or "method" in shipped:
        return [shipped]
    return [v for k, v in shipped.items() if k in ("train", "pretrain", "finetune") and isinstance(v, dict)]


def _has_accuracy(row: Any) -> bool:
    """A study's result row holds a measured accuracy (or a pretraining loss), at the top or per task."""
    if isinstance(row, dict):
        return any(
            (("accuracy" in k or k.endswith("loss")) and isinstance(v, float)) or _has_accuracy(v)
            for k, v in row.items()
        )
    return False


def _check_run(name: str, metrics: dict[str, Any], shipped: dict[str, Any]) -> None:
    assert metrics["history"], f"{name}: no validation pass"
    assert metrics["train"]["steps"] >= 1, name
    precisions = {resolve(t.get("precision", "auto"), cpu=True) for t in _train_configs(shipped)}
    assert metrics["train"]["mixed_precision"] in precisions, (name, metrics["train"]["mixed_precision"])
    if "rougeL" in metrics.get("test", {}) or shipped.get("task") == "summarisation":
        # generation at validation (the pass that crashed), on the test split, and for the zero-shot base
        assert all("rougeL" in h and h["n"] >= 1 for h in metrics["history"]), metrics["history"]
        assert metrics["test"]["n"] >= 1 and 0.0 <= metrics["test"]["rougeL"] <= 1.0
        if shipped.get("eval_zero_shot"):
            assert metrics["test"]["zero_shot"]["n"] == metrics["test"]["n"]
            assert "rougeL" in metrics["test"]["gain_vs_zero_shot"]


@pytest.mark.timeout(900)  # ~10x the unloaded time: two cores shared by many processes
@pytest.mark.parametrize("path", CONFIGS, ids=[config_id(p) for p in CONFIGS])
def test_shipped_config_runs_as_shipped(path: Path, shipped_models: dict[str, Path], tmp_path: Path) -> None:
    shipped = yaml.safe_load(path.read_text())
    toy = toy_config(path, shipped_models, tmp_path / "probe")
    # only the model, data size, step count and output paths changed
    for key in ("task", "method", "precision", "method_args", "dataset", "batch_size", "lr", "seed", "seeds"):
        if key in shipped:
            assert toy[key] == shipped[key], key
    found = run_shipped(path, shipped_models, tmp_path / "run")
    assert found, f"{config_id(path)}: recipes/{recipe_of(path).name} wrote no metrics.json or results.jsonl"
    runs = {k: v for k, v in found.items() if k.endswith("metrics.json")}
    for name, metrics in runs.items():
        _check_run(f"{config_id(path)}:{name}", metrics, shipped)
    for name, rows in found.items():
        if name.endswith("results.jsonl"):
            assert rows and all(_has_accuracy(r) for r in rows), (name, rows[:2])
    if "task" in shipped:  # a single run: exactly one metrics.json, at the top
        assert list(runs) == ["metrics.json"], list(runs)
        assert found["metrics.json"]["test"]["examples"] >= 1
    if shipped.get("task") == "summarisation":
        _check_predictor(tmp_path / "run", shipped, found["metrics.json"])


def _check_predictor(run_dir: Path, shipped: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The run loaded later generates at the precision it trained with: the same summaries as the
    run's own test pass (samples.jsonl), from the same documents in the same batches."""
    from nlp_transfer.data import sources
    from nlp_transfer.predict import load_predictor

    predictor = load_predictor(str(run_dir))
    assert predictor.meta["mixed_precision"] == metrics["train"]["mixed_precision"]
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    documents = list(sources.load_source(shipped["dataset"], shipped["seed"])["test"]["document"])
    n = metrics["test"]["examples"]
    summaries = predictor.summarise(
        documents[:n], shipped["max_new_tokens"], batch_size=shipped["eval_batch_size"]
    )
    assert [summaries[s["example_id"]] for s in samples] == [s["summary"] for s in samples]
