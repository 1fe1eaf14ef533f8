"""Distillation: a fine-tuned teacher's soft labels train smaller or adapter students.

Run:
    python recipes/distill.py --config recipes/configs/transfer/distill_rt_minilm.yaml [--key value ...]

Trains the teacher (unless `teacher_dir` names a finished run), then each student, and compares
accuracy, parameters, weights on disk and CPU latency, measured in one process, interleaved, on the
same test texts. A student with `alpha: 0` is the same student trained on hard labels only: the
baseline that says what the teacher added. Writes results.jsonl and report.md under `output_dir`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_transfer import pipeline
from nlp_transfer.config import from_dict, opt
from nlp_transfer.transfer.common import mean_std, recipe_main, train_config
from nlp_transfer.transfer.distill import Distillation, DistillTask, latency_ms, weights_mb
from nlp_transfer.transfer.study import NO_CHECKPOINTS, append_row, read_rows
from nlp_transfer.transfer.tracked import TrackedTask, load_classification


@dataclass
class DistillStudy:
    train: dict = opt({}, "TrainConfig keys shared by teacher and students (dataset, max_train_samples, batch_size, ...)")
    teacher: dict = opt({"method": "full", "lr": 5e-5}, "TrainConfig overrides of the teacher run")
    teacher_dir: str | None = opt(None, "a finished classification run to use as the teacher instead of training one")
    students: dict = opt({}, "label -> {kd: Distillation keys, train: TrainConfig overrides}")
    seeds: list[int] = opt([1], "one run per student and seed (the teacher is trained once, with the first seed)")
    latency_examples: int = opt(256, "test texts timed for latency (batch 32, fp32, best of 3)")
    output_dir: str = opt("runs/distill", "teacher and student runs, results.jsonl and report.md")

    def validate(self) -> None:
        train_config(self.train, **self.teacher)
        for label, spec in self.students.items():
            unknown = set(spec) - {"kd", "train"}
            if unknown:
                from nlp_transfer.errors import ConfigError

                raise ConfigError(f"students.{label}: unknown keys {sorted(unknown)} (use kd, train)")
            from_dict(Distillation, {"teacher": "-", **spec.get("kd", {})}, where=f"students.{label}.kd")
            train_config(self.train, where=f"students.{label}.train", **spec.get("train", {}))


def _common(cfg: DistillStudy, seed: int, out: Path, **overrides: Any) -> Any:
    return train_config(cfg.train, **overrides, seed=seed, output_dir=str(out), overwrite_output_dir=True,
                        save_every=NO_CHECKPOINTS, report_to="none")  # fmt: skip


def study(cfg: DistillStudy) -> str:
    root = Path(cfg.output_dir)
    results = root / "results.jsonl"
    done = {(r["model"], r["seed"]) for r in read_rows(results)}
    teacher_dir = Path(cfg.teacher_dir) if cfg.teacher_dir else root / "teacher"
    if not cfg.teacher_dir and ("teacher", cfg.seeds[0]) not in done:
        tc = _common(cfg, cfg.seeds[0], teacher_dir, **cfg.teacher)
        m = pipeline.run(tc, task=TrackedTask(tc, track=False))
        append_row(results, _row("teacher", cfg.seeds[0], m, teacher_dir))
    for seed in cfg.seeds:
        for label, spec in cfg.students.items():
            if (label, seed) in done:
                continue
            out = root / f"{label}_s{seed}"
            kd = from_dict(Distillation, {**spec.get("kd", {}), "teacher": str(teacher_dir)})
            tc = _common(cfg, seed, out, **spec.get("train", {}))
            m = pipeline.run(tc, task=DistillTask(tc, kd, track=False))
            append_row(results, {**_row(label, seed, m, out), "alpha": kd.alpha, "temperature": kd.temperature, "layers": kd.student_layers})
    rows = read_rows(results)
    _add_latency(cfg, rows, teacher_dir, root)
    text = markdown(rows)
    (root / "report.md").write_text(text)
    return text


def _row(label: str, seed: int, m: dict[str, Any], out: Path) -> dict[str, Any]:
    return {"model": label, "seed": seed, "test_accuracy": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
            "trainable_params": m["trainable_params"], "total_params": m["total_params"], "weights_mb": round(weights_mb(out), 1),
            "train_time_s": m["train"]["train_time_s"], "dir": str(out)}  # fmt: skip


def _add_latency(cfg: DistillStudy, rows: list[dict[str, Any]], teacher_dir: Path, root: Path) -> None:
    """CPU latency of each distinct model (first seed), timed back to back on the same texts."""
    from nlp_transfer.predict import load_predictor

    data, _ = load_classification(train_config(cfg.train, seed=cfg.seeds[0]))
    texts = data["test"]["text"][: cfg.latency_examples]
    firsts = {}
    for r in rows:
        firsts.setdefault(r["model"], r)
    for r in firsts.values():
        p = load_predictor(r["dir"])
        params = sum(x.numel() for x in p.model.parameters())
        r["latency_ms"], r["inference_params"] = latency_ms(p.model, p.tokenizer, texts), params
    for r in rows:
        r["latency_ms"], r["inference_params"] = firsts[r["model"]]["latency_ms"], firsts[r["model"]]["inference_params"]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# Distillation", "", "| model | alpha / T | layers | test acc (mean ± sd) | seeds | params at inference | trainable | weights on disk | CPU latency ms/example | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for label in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == label]
        acc, sd = mean_std([r["test_accuracy"] for r in rs])
        r0 = rs[0]
        kd = "-" if label == "teacher" else f"{r0['alpha']:g} / {r0['temperature']:g}"
        layers = r0.get("layers") or "all"
        lines.append(f"| {label} | {kd} | {layers} | {acc:.3f} ± {sd:.3f} | {len(rs)} | {r0['inference_params'] / 1e6:.1f}M | "
                     f"{r0['trainable_params'] / 1e6:.2f}M | {r0['weights_mb']:.1f} MB | {r0['latency_ms']:.2f} | {mean_std([r['train_time_s'] for r in rs])[0]:.0f} |")  # fmt: skip
    lines.append("\nAn adapter student's weights on disk are the adapter and head only; at inference it needs the base model too.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(recipe_main(DistillStudy, study, sys.argv[1:]))
