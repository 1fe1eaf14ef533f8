"""The transfer report: flags, table and plot; a planted negative-transfer case is caught end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nlp_transfer.transfer.report import ReportConfig, run_study, summarise
from nlp_transfer.transfer.report_render import markdown, plot


def _rows(method: str, budget: str, accs: list[float], **extra: float) -> list[dict]:
    base = {"test_accuracy_last": None, "train_accuracy_last": 0.9, "val_accuracy_last": 0.8, "n_train": int(budget), "train_time_s": 1.0}
    return [{"method": method, "budget": budget, "seed": i, **base, "test_accuracy": a, **extra} for i, a in enumerate(accs)]


def test_summarise_flags_negative_transfer_only_beyond_noise() -> None:
    rows = (
        _rows("full", "64", [0.70, 0.72, 0.71]) + _rows("scratch", "64", [0.55, 0.56, 0.57])  # clear transfer
        + _rows("full", "256", [0.60, 0.64, 0.62]) + _rows("scratch", "256", [0.61, 0.63, 0.62])  # within noise
        + _rows("lora", "256", [0.50, 0.51, 0.50])  # clearly worse
    )  # fmt: skip
    s = summarise(rows, noise_z=2.0, overfit_gap=0.15)
    verdict = {(r["method"], r["budget"]): r["verdict"] for r in s["table"] if r["method"] != "scratch"}
    assert verdict[("full", "64")] == "transfer"
    assert verdict[("full", "256")].startswith("NEGATIVE TRANSFER (not better")
    assert verdict[("lora", "256")] == "NEGATIVE TRANSFER (worse than scratch)"
    assert sum("negative transfer" in f for f in s["flags"]) == 2


def test_summarise_flags_overfitting() -> None:
    rows = _rows("full", "16", [0.6, 0.6], train_accuracy_last=1.0, val_accuracy_last=0.6, test_accuracy_last=0.55, test_tracked_best=0.6)
    s = summarise(rows, overfit_gap=0.15)
    assert s["table"][0]["overfit"] and any("overfitting" in f for f in s["flags"])
    assert "vs last checkpoint 0.550" in next(f for f in s["flags"] if "overfitting" in f)


def _collapsed_copy(src: Path, dst: Path) -> Path:
    """A 'pretrained' checkpoint whose word embeddings are all zero: it cannot tell words apart."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(src)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.zero_()
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def test_report_flags_planted_negative_transfer(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    broken = _collapsed_copy(tiny_models["bert"], tmp_path / "collapsed")
    cfg = ReportConfig(
        train={"model": str(broken), "dataset": str(review_csv), "precision": "fp32", "batch_size": 16, "eval_batch_size": 48,
               "max_length": 32, "epochs": 4, "log_every": 100},
        budgets=["192"], seeds=[1, 2], methods={"frozen": {"lr": 5e-3}}, scratch={"method": "full", "lr": 5e-3},
        min_steps=40, evals=3, validation_size=None, baselines=["majority", "zero_shot", "embed_lr"],
        embed_model=str(tiny_models["bert"]), output_dir=str(tmp_path / "runs"), report_dir=str(tmp_path / "report"),
    )  # fmt: skip
    cfg.validate()
    rows = run_study(cfg)
    assert len([r for r in rows if r["method"] in ("frozen", "scratch")]) == 4
    s = summarise(rows, cfg.noise_z, cfg.overfit_gap)
    frozen = {r["budget"]: r for r in s["table"] if r["method"] == "frozen"}
    scratch = {r["budget"]: r for r in s["table"] if r["method"] == "scratch"}
    assert scratch["192"]["acc"] > 0.8  # the task is learnable from scratch ...
    assert frozen["192"]["verdict"].startswith("NEGATIVE TRANSFER")  # ... but not from the broken checkpoint
    plot(s, tmp_path / "report" / "curve.png", "planted")
    text = markdown(s, "planted", ["tiny"])
    assert (tmp_path / "report" / "curve.png").stat().st_size > 10_000
    assert "NEGATIVE TRANSFER" in text and "| scratch |" in text
    assert not list((tmp_path / "runs").glob("*/model.safetensors"))  # weights dropped after each run
    assert run_study(cfg) == rows  # finished runs are skipped on a rerun


def test_report_config_rejects_bad_budget() -> None:
    from nlp_transfer.errors import ConfigError

    with pytest.raises(ConfigError, match="budgets"):
        ReportConfig(budgets=["ten"]).validate()
