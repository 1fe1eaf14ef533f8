"""Multi-task learning: one shared encoder, one head per task; compared with one model per task.

Run:
    python recipes/multitask.py --config recipes/configs/transfer/multitask_rt.yaml [--key value ...]

For each sampling rule, one multi-task run over all tasks; with `single_task_baselines`, one run per
task alone through the same code (same encoder, pooling and head), so the difference is only the
sharing. Writes results.jsonl and report.md under `output_dir`; each multi-task run directory is
one artifact, `nlp_transfer.transfer.multitask.load_task_model(dir, task)` gives any task's classifier.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_transfer import pipeline
from nlp_transfer.config import opt
from nlp_transfer.transfer.common import drop_weights, mean_std, recipe_main, train_config
from nlp_transfer.transfer.multitask import POOLINGS, RULES, MultiTaskTask, mixing_weights
from nlp_transfer.transfer.study import NO_CHECKPOINTS, append_row, read_rows


@dataclass
class MultiTaskStudy:
    train: dict = opt({}, "TrainConfig keys of every run (model, method: full|top_k|frozen, lr, epochs, ...)")
    tasks: dict = opt({}, "task name -> TrainConfig data keys (dataset, text_column, label_column, labels) + max_train_samples")
    sampling: list[str] = opt(["temperature"], "sampling rules to compare: proportional | uniform | temperature")
    temperature: float = opt(2.0, "T of the temperature rule: p_i ~ n_i^(1/T)")
    pooling: str = opt("mean", "mean (of token states) | pooler ([CLS] pooler)")
    single_task_baselines: bool = opt(True, "also train one model per task with the same settings")
    seeds: list[int] = opt([1], "one run per configuration and seed")
    output_dir: str = opt("runs/multitask", "runs, results.jsonl and report.md")
    keep_weights: bool = opt(True, "keep the multi-task artifacts (single-task baselines are always dropped)")

    def validate(self) -> None:
        from nlp_transfer.errors import ConfigError

        if not self.tasks:
            raise ConfigError("tasks: give at least one task")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}")
        for rule in self.sampling:
            mixing_weights([1], rule, self.temperature)
        for name, spec in self.tasks.items():
            train_config({k: v for k, v in spec.items() if k != "max_train_samples"}, where=f"tasks.{name}")
        if rule_bad := [r for r in self.sampling if r not in RULES]:
            raise ConfigError(f"unknown sampling rules {rule_bad}")


def study(cfg: MultiTaskStudy) -> str:
    root = Path(cfg.output_dir)
    results = root / "results.jsonl"
    done = {(r["run"], r["seed"]) for r in read_rows(results)}
    plans: list[tuple[str, dict[str, Any], str]] = [(f"multi ({rule})", cfg.tasks, rule) for rule in cfg.sampling]
    if cfg.single_task_baselines:
        plans += [(f"single ({name})", {name: spec}, "proportional") for name, spec in cfg.tasks.items()]
    for seed in cfg.seeds:
        for label, tasks, rule in plans:
            if (label, seed) in done:
                continue
            out = root / f"{label.replace(' ', '_').replace('(', '').replace(')', '')}_s{seed}"
            tc = train_config(cfg.train, seed=seed, output_dir=str(out), overwrite_output_dir=True, save_every=NO_CHECKPOINTS, report_to="none")
            task = MultiTaskTask(tc, tasks, sampling=rule, temperature=cfg.temperature, pooling=cfg.pooling)
            m = pipeline.run(tc, task=task)
            weights = mixing_weights([task.sizes[n] for n in task.labels], rule, cfg.temperature)
            append_row(results, {"run": label, "seed": seed, "per_task": m["test"]["per_task"], "train_sizes": task.sizes,
                                 "weights": dict(zip(task.labels, weights, strict=True)), "steps": m["train"]["steps"],
                                 "train_time_s": m["train"]["train_time_s"], "params": m["total_params"], "dir": str(out)})  # fmt: skip
            if label.startswith("single") or not cfg.keep_weights:
                drop_weights(out)
    text = markdown(read_rows(results), list(cfg.tasks))
    (root / "report.md").write_text(text)
    return text


def markdown(rows: list[dict[str, Any]], tasks: list[str]) -> str:
    lines = ["# Multi-task learning", "", f"| run | mixing weights | {' | '.join(f'{t} test acc' for t in tasks)} | seeds | params | steps | train s |",
             "|---|---|" + "---|" * len(tasks) + "---|---|---|---|"]  # fmt: skip
    for label in dict.fromkeys(r["run"] for r in rows):
        rs = [r for r in rows if r["run"] == label]
        cells = []
        for t in tasks:
            accs = [r["per_task"][t]["accuracy"] for r in rs if t in r["per_task"]]
            cells.append("{:.3f} ± {:.3f}".format(*mean_std(accs)) if accs else "-")
        weights = ", ".join(f"{k} {v:.2f}" for k, v in rs[0]["weights"].items())
        total_params = sum(r["params"] for r in rs) / len(rs)
        lines.append(f"| {label} | {weights} | {' | '.join(cells)} | {len(rs)} | {total_params / 1e6:.1f}M | {rs[0]['steps']} | "
                     f"{mean_std([r['train_time_s'] for r in rs])[0]:.0f} |")  # fmt: skip
    lines.append("\nOne multi-task model serves every task with one encoder; the single-task rows need one encoder per task.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(recipe_main(MultiTaskStudy, study, sys.argv[1:]))
