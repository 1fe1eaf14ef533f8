"""The transfer report: does pretraining help this task, at which label budgets, with which method?

For each budget of labelled examples and each seed, every chosen method trains from the pretrained
checkpoint, and a scratch baseline trains the same architecture from random weights (`init:
scratch`). Reference lines need no fine-tuning: the majority class, zero-shot similarity to label
descriptions, and frozen mean-pooled embeddings + logistic regression on the same examples.

Flags:
- negative transfer: a pretrained method's mean test accuracy is not above scratch's by more than
  `noise_z` standard errors of the difference (seed noise): pretraining did not demonstrably help;
- overfitting: mean train - validation accuracy gap at the end of training above `overfit_gap`;
  the table then shows what best-checkpoint selection (early stopping) bought on test, comparing the
  selected checkpoint with the last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.config import opt
from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.common import mean_std, train_config
from nlp_transfer.transfer.study import append_row, budget_run, read_rows
from nlp_transfer.transfer.tracked import load_classification

SCRATCH = "scratch"


@dataclass
class ReportConfig:
    train: dict = opt({}, "TrainConfig keys shared by every run (model, dataset, precision, batch_size, epochs, ...)")
    budgets: list[str] = opt(["16", "64", "256", "1024"], "labelled training examples per run; 'all' = the whole train split")
    seeds: list[int] = opt([1, 2, 3], "one run per seed (seed also draws the split and the subset)")
    methods: dict = opt({"full": {"lr": 1e-4}}, "label -> TrainConfig overrides of a pretrained run; `method` defaults to the label")
    scratch: dict | None = opt({"method": "full", "lr": 1e-4}, "overrides of the random-init baseline run; null skips it")
    min_steps: int = opt(60, "at least this many optimizer steps per run, however few the labels")
    evals: int = opt(5, "validation passes per run (each also scores train and test, for the curves and flags)")
    validation_size: int | None = opt(256, "validation examples used for model selection; null = all")
    track_examples: int = opt(500, "test and training examples scored at every validation pass (curves, gap, early-stop effect)")
    noise_z: float = opt(2.0, "standard errors the pretrained-minus-scratch gap must exceed to count as transfer")
    overfit_gap: float = opt(0.15, "train - validation accuracy at the end of training above this flags overfitting")
    baselines: list[str] = opt(["majority", "zero_shot", "embed_lr"], "reference lines: majority, zero_shot, embed_lr")
    embed_model: str = opt("minilm-l6", "encoder for the zero_shot and embed_lr baselines")
    label_descriptions: dict = opt({}, "label -> description(s) for the zero-shot baseline; default: built-in sentiment ones")
    title: str = opt("Transfer report", "heading of the Markdown report")
    output_dir: str = opt("runs/transfer_report", "per-run directories and results.jsonl (a rerun skips finished runs)")
    report_dir: str = opt("docs/transfer_report", "where report.md and curve.png go")
    keep_weights: bool = opt(False, "keep each run's weights (~90 MB per MiniLM run)")
    render_only: bool = opt(False, "train nothing: rebuild report.md and curve.png from results.jsonl (e.g. while runs continue)")
    notes: list[str] = opt([], "lines copied into the report (settings, machine load, caveats)")

    def validate(self) -> None:
        for b in self.budgets:
            if b != "all" and not (str(b).isdigit() and int(b) > 0):
                raise ConfigError(f"budgets must be positive integers or 'all', not {b!r}")
        if not self.seeds:
            raise ConfigError("give at least one seed")
        if not self.methods:
            raise ConfigError("give at least one method")
        for b in self.baselines:
            if b not in ("majority", "zero_shot", "embed_lr"):
                raise ConfigError(f"unknown baseline {b!r}: use majority, zero_shot, embed_lr")
        for label, overrides in runs_of(self):
            train_config(self.train, where=f"methods.{label}", **overrides)


def runs_of(cfg: ReportConfig) -> list[tuple[str, dict[str, Any]]]:
    out = [(label, {"method": label, **(o or {}), "init": "pretrained"}) for label, o in cfg.methods.items()]
    if cfg.scratch is not None:
        out.append((SCRATCH, {**cfg.scratch, "init": "scratch"}))
    return out


def run_study(cfg: ReportConfig) -> list[dict[str, Any]]:
    """Every (budget, seed, method) run not yet in results.jsonl, then the baselines; returns all rows."""
    root = Path(cfg.output_dir)
    results = root / "results.jsonl"
    done = {(r["method"], r["budget"], r["seed"]) for r in read_rows(results)}
    for seed in cfg.seeds:
        tc = train_config(cfg.train, seed=seed)
        data, labels = load_classification(tc)
        if tc.max_eval_samples:  # the baselines score the same test examples as the runs
            data["test"] = data["test"].select(range(min(tc.max_eval_samples, len(data["test"]))))
        for budget in cfg.budgets:
            n = None if budget == "all" else int(budget)
            if n is not None and n > len(data["train"]):
                raise ConfigError(f"budget {n} exceeds the {len(data['train'])} training examples")
            for label, overrides in runs_of(cfg):
                if (label, str(budget), seed) in done:
                    continue
                row = budget_run(cfg.train, overrides, seed=seed, n_train=n, n_available=len(data["train"]),
                                 output_dir=root / f"{label}_{budget}_s{seed}", min_steps=cfg.min_steps, evals=cfg.evals,
                                 validation_size=cfg.validation_size, keep_weights=cfg.keep_weights,
                                 track_examples=cfg.track_examples)  # fmt: skip
                append_row(results, {"method": label, "budget": str(budget), **row})
            if "embed_lr" in cfg.baselines and ("embed_lr", str(budget), seed) not in done:
                append_row(results, {"method": "embed_lr", "budget": str(budget), **embed_lr_row(cfg, data, labels, n, seed)})
        if "zero_shot" in cfg.baselines and ("zero_shot", "0", seed) not in done:
            from nlp_transfer.transfer.zeroshot import embedding_zero_shot

            pred = embedding_zero_shot(data["test"]["text"], labels, cfg.label_descriptions, cfg.embed_model)
            acc = float(np.mean(np.asarray(pred) == np.asarray(data["test"]["label"])))
            append_row(results, {"method": "zero_shot", "budget": "0", "seed": seed, "test_accuracy": acc})
    return read_rows(results)


def embed_lr_row(cfg: ReportConfig, data: Any, labels: list[str], n: int | None, seed: int) -> dict[str, Any]:
    from nlp_transfer.transfer.fewshot import embedding_logreg

    train = data["train"] if n is None else data["train"].select(range(n))
    acc = embedding_logreg(train["text"], train["label"], data["test"]["text"], data["test"]["label"], cfg.embed_model)
    return {"seed": seed, "n_train": len(train), "test_accuracy": acc}


# --- summary and flags ---------------------------------------------------------------------------


def budget_key(b: str) -> float:
    return math.inf if b == "all" else float(b)


def summarise(rows: list[dict[str, Any]], noise_z: float = 2.0, overfit_gap: float = 0.15) -> dict[str, Any]:
    """Mean/std per (method, budget), the pretrained-vs-scratch verdicts and the overfitting flags."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["budget"]), []).append(r)

    def stat(method: str, budget: str, key: str) -> tuple[float, float, int]:
        vals = [r[key] for r in cells.get((method, budget), []) if r.get(key) is not None]
        return (*mean_std(vals), len(vals))

    budgets = sorted({b for (_, b) in cells if b != "0"}, key=budget_key)
    trained = [m for m in dict.fromkeys(r["method"] for r in rows) if m not in ("zero_shot", "embed_lr")]
    table, flags = [], []
    for m in trained:
        for b in budgets:
            if (m, b) not in cells:
                continue
            acc, sd, n = stat(m, b, "test_accuracy")
            last, _, _ = stat(m, b, "test_accuracy_last")
            selected, _, _ = stat(m, b, "test_tracked_best")
            train_acc, _, _ = stat(m, b, "train_accuracy_last")
            val_acc, _, _ = stat(m, b, "val_accuracy_last")
            gap = train_acc - val_acc
            n_train = cells[(m, b)][0].get("n_train")
            row = {"method": m, "budget": b, "n_train": n_train, "acc": acc, "sd": sd, "seeds": n, "acc_last": last, "acc_selected": selected, "gap": gap,
                   "time_s": stat(m, b, "train_time_s")[0], "verdict": "", "overfit": bool(gap > overfit_gap)}  # fmt: skip
            if m != SCRATCH and (SCRATCH, b) in cells:
                s_acc, s_sd, s_n = stat(SCRATCH, b, "test_accuracy")
                se = math.sqrt(sd**2 / max(n, 1) + s_sd**2 / max(s_n, 1))
                diff = acc - s_acc
                row.update(delta=diff, se=se)
                if diff <= noise_z * se:
                    row["verdict"] = "NEGATIVE TRANSFER" + (" (worse than scratch)" if diff < -noise_z * se else " (not better than scratch beyond seed noise)")
                    flags.append(f"negative transfer: {m} at {b} labels: {acc:.3f} vs scratch {s_acc:.3f} (diff {diff:+.3f}, {noise_z:g} SE = {noise_z * se:.3f})")
                else:
                    row["verdict"] = "transfer"
            if row["overfit"]:
                flags.append(f"overfitting: {m} at {b} labels: train-val gap {gap:.2f} > {overfit_gap:g}; "
                             f"tracked test accuracy with best-checkpoint selection {selected:.3f} vs last checkpoint {last:.3f}")  # fmt: skip
            table.append(row)
    baselines = {}
    for m in ("zero_shot", "embed_lr"):
        for b in ["0", *budgets]:
            if (m, b) in cells:
                baselines[(m, b)] = stat(m, b, "test_accuracy")[:2]
    majority = [r["majority_accuracy"] for r in rows if r.get("majority_accuracy") is not None]
    return {"table": table, "flags": flags, "budgets": budgets, "methods": trained, "baselines": baselines,
            "majority": float(np.mean(majority)) if majority else None}  # fmt: skip
