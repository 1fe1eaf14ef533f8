"""Unsupervised domain adaptation: labelled source, unlabelled target; source-only vs MMD vs adversarial.

Run:
    python recipes/domain_adapt.py --config recipes/configs/transfer/domain_adapt_rt_typos.yaml [--key value ...]

Each mode x seed trains one classifier on the source (`train:` = TrainConfig keys) while drawing
unlabelled batches of the target's train split; every run is scored on the source test split and on
the target test split. A shift probe (logistic regression telling source from target texts on frozen
embeddings, 5-fold) says how separable the domains are before any training. Writes results.jsonl
(a rerun skips finished runs) and report.md under `output_dir`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_transfer import pipeline
from nlp_transfer.config import from_dict, opt
from nlp_transfer.transfer import derived_datasets as derived
from nlp_transfer.transfer.common import drop_weights, mean_std, recipe_main, train_config
from nlp_transfer.transfer.domain_adapt import DomainAdaptation, DomainAdaptTask
from nlp_transfer.transfer.study import NO_CHECKPOINTS, append_row, read_rows


@dataclass
class DomainAdaptStudy:
    train: dict = opt({}, "TrainConfig keys of the source classifier (model, dataset = source, method, lr, ...)")
    target: dict = opt({}, "DomainAdaptation keys shared by all modes (target_dataset, schedule, domain_lr, ...)")
    modes: dict = opt({"none": {}, "mmd": {"lam": 1.0}, "adversarial": {"lam": 1.0}}, "label -> DomainAdaptation overrides (mode defaults to the label)")
    seeds: list[int] = opt([1, 2, 3], "one run per mode and seed")
    probe_examples: int = opt(1000, "texts per domain for the shift probe; 0 skips it")
    output_dir: str = opt("runs/domain_adapt", "run directories, results.jsonl and report.md")
    keep_weights: bool = opt(False, "keep each run's exported classifier")
    render_only: bool = opt(False, "train nothing: rebuild report.md from results.jsonl")

    def validate(self) -> None:
        for label, o in self.modes.items():
            from_dict(DomainAdaptation, {**self.target, "mode": label, **(o or {})}, where=f"modes.{label}")
        train_config(self.train)


def shift_probe(cfg: DomainAdaptStudy) -> dict[str, Any]:
    """How well frozen embeddings tell the domains apart (0.5 = no visible shift)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from nlp_transfer.transfer.embed import embed

    n, da = cfg.probe_examples, from_dict(DomainAdaptation, cfg.target)
    tc = train_config(cfg.train)
    source = derived.load(tc.dataset, tc.seed)["test"][tc.text_column][:n]
    target = derived.load(da.target_dataset, tc.seed)["test"][da.target_text_column][:n]
    x = embed(list(source) + list(target))
    y = np.array([0] * len(source) + [1] * len(target))
    acc = cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=5).mean()
    return {"probe_accuracy": float(acc), "examples_per_domain": len(source)}


def study(cfg: DomainAdaptStudy) -> str:
    root = Path(cfg.output_dir)
    results = root / "results.jsonl"
    done = {(r["mode"], r["seed"]) for r in read_rows(results)}
    if cfg.render_only:
        done = {(label, seed) for label in [*cfg.modes, "probe"] for seed in [0, *cfg.seeds]}
    if cfg.probe_examples and ("probe", 0) not in done:
        append_row(results, {"mode": "probe", "seed": 0, **shift_probe(cfg)})
    for seed in cfg.seeds:
        for label, overrides in cfg.modes.items():
            if (label, seed) in done:
                continue
            da = from_dict(DomainAdaptation, {**cfg.target, "mode": label, **(overrides or {})})
            out = root / f"{label}_s{seed}"
            tc = train_config(cfg.train, seed=seed, output_dir=str(out), overwrite_output_dir=True, save_every=NO_CHECKPOINTS, report_to="none")
            start = time.perf_counter()
            m = pipeline.run(tc, task=DomainAdaptTask(tc, da))
            last = (m.get("history") or [{}])[-1]
            append_row(results, {
                "mode": label, "seed": seed, "lam": da.lam, "schedule": da.schedule,
                "source_test_accuracy": m["test"]["accuracy"], "target_test_accuracy": m["test"]["target"]["accuracy"],
                "target_test_macro_f1": m["test"]["target"]["macro_f1"], "train_time_s": m["train"]["train_time_s"],
                "wall_time_s": round(time.perf_counter() - start, 1), "steps": m["train"]["steps"],
                **{k: v for k, v in last.items() if k.startswith("da_")},
            })  # fmt: skip
            if not cfg.keep_weights:
                drop_weights(out)
    text = markdown(read_rows(results), cfg)
    (root / "report.md").write_text(text)
    return text


def markdown(rows: list[dict[str, Any]], cfg: DomainAdaptStudy) -> str:
    da = from_dict(DomainAdaptation, cfg.target)
    lines = [f"# Domain adaptation: {train_config(cfg.train).dataset} -> {da.target_dataset}", ""]
    probe = next((r for r in rows if r["mode"] == "probe"), None)
    if probe:
        lines += [f"Shift probe: logistic regression on frozen MiniLM embeddings tells source from target test texts with "
                  f"{probe['probe_accuracy']:.3f} accuracy (5-fold, {probe['examples_per_domain']} texts per domain; 0.5 = no visible shift).", ""]  # fmt: skip
    lines += ["| mode | lambda (schedule) | source test acc | target test acc | target macro-F1 | seeds | train s/run |", "|---|---|---|---|---|---|---|"]
    for label in cfg.modes:
        rs = [r for r in rows if r["mode"] == label]
        if not rs:
            continue
        s, t, f = (mean_std([r[k] for r in rs]) for k in ("source_test_accuracy", "target_test_accuracy", "target_test_macro_f1"))
        lam = "-" if label == "none" else f"{rs[0]['lam']:g} ({rs[0]['schedule']})"
        secs = mean_std([r["train_time_s"] for r in rs])[0]
        lines.append(f"| {label} | {lam} | {s[0]:.3f} ± {s[1]:.3f} | {t[0]:.3f} ± {t[1]:.3f} | {f[0]:.3f} ± {f[1]:.3f} | {len(rs)} | {secs:.0f} |")
    base = {r["seed"]: r["target_test_accuracy"] for r in rows if r["mode"] == "none"}
    for label in cfg.modes:
        paired = [r["target_test_accuracy"] - base[r["seed"]] for r in rows if r["mode"] == label and label != "none" and r["seed"] in base]
        if paired:
            d, sd = mean_std(paired)
            lines.append(f"\n{label} vs source-only on target test, paired by seed: {d:+.3f} ± {sd:.3f} over {len(paired)} seeds")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(recipe_main(DomainAdaptStudy, study, sys.argv[1:]))
