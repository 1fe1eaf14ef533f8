"""Domain-adaptive pretraining, then fine-tuning from the result; compared with fine-tuning the original.

Run:
    python recipes/dapt.py --config recipes/configs/transfer/dapt_lee_news_minilm.yaml [--key value ...]

Stage 1 continues pretraining `pretrain.model` on unlabelled text (masked-LM for encoders, causal-LM
for decoders; full or LoRA via `pretrain.method`) and exports an adapted base model. Stage 2
fine-tunes a classifier from it, and (with `compare_baseline`) the same run from the original
checkpoint, for each seed. Writes results.jsonl and report.md under `output_dir`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_transfer import pipeline
from nlp_transfer.config import from_dict, opt
from nlp_transfer.transfer.common import mean_std, recipe_main, train_config
from nlp_transfer.transfer.dapt import LanguageModelingTask, Pretraining, export_base
from nlp_transfer.transfer.study import append_row, budget_run, read_rows


@dataclass
class DaptStudy:
    pretrain: dict = opt({}, "TrainConfig keys of stage 1 (model, method, lr, max_steps, batch_size, max_length = block size)")
    text: dict = opt({}, "Pretraining keys: text_dataset (lee_news, a file or directory), text_column, objective, mlm_probability")
    finetune: dict = opt({}, "TrainConfig keys of stage 2 (dataset, method, lr, max_train_samples, ...); model is set here")
    finetune_min_steps: int = opt(0, "at least this many fine-tuning steps")
    seeds: list[int] = opt([1, 2, 3], "fine-tuning seeds (pretraining runs once)")
    compare_baseline: bool = opt(True, "also fine-tune the original checkpoint with the same settings")
    output_dir: str = opt("runs/dapt", "pretraining run, adapted base, fine-tuning runs, results.jsonl, report.md")

    def validate(self) -> None:
        from_dict(Pretraining, self.text, where="text")
        train_config(self.pretrain, where="pretrain")
        train_config(self.finetune, where="finetune")


def study(cfg: DaptStudy) -> str:
    root = Path(cfg.output_dir)
    results = root / "results.jsonl"
    done = {(r["stage"], r["seed"]) for r in read_rows(results)}
    pre_dir, base_dir = root / "pretrain", root / "adapted_base"
    original = train_config(cfg.pretrain).model
    if ("pretrain", 0) not in done:
        tc = train_config(cfg.pretrain, task="language_modeling", seed=cfg.seeds[0], output_dir=str(pre_dir), overwrite_output_dir=True,
                          report_to="none", metric_for_best="loss")  # fmt: skip
        task = LanguageModelingTask(tc, from_dict(Pretraining, cfg.text))
        m = pipeline.run(tc, task=task)
        first = m["history"][0] if m["history"] else {}
        export_base(pre_dir, base_dir)
        append_row(results, {"stage": "pretrain", "seed": 0, "objective": task.objective, "fresh_head": task.fresh_head,
                             "validation_loss_first_eval": first.get("loss"), "validation_loss": m["validation"].get("loss"),
                             "validation_perplexity": m["validation"].get("perplexity"), "steps": m["train"]["steps"],
                             "train_time_s": m["train"]["train_time_s"], "blocks": m["train"]["samples"]})  # fmt: skip
    for seed in cfg.seeds:
        for stage, model in (("adapted", str(base_dir)), ("original", original)):
            if (stage, seed) in done or (stage == "original" and not cfg.compare_baseline):
                continue
            row = budget_run(cfg.finetune, {"model": model}, seed=seed, output_dir=root / f"finetune_{stage}_s{seed}",
                             n_train=train_config(cfg.finetune).max_train_samples, min_steps=cfg.finetune_min_steps, evals=1,
                             validation_size=None, track=False)  # fmt: skip
            append_row(results, {"stage": stage, **row})
    text = markdown(read_rows(results), cfg, original)
    (root / "report.md").write_text(text)
    return text


def markdown(rows: list[dict[str, Any]], cfg: DaptStudy, original: str) -> str:
    pre = next((r for r in rows if r["stage"] == "pretrain"), None)
    text = from_dict(Pretraining, cfg.text)
    lines = [f"# Domain-adaptive pretraining on {text.text_dataset}", ""]
    if pre:
        lines.append(f"Stage 1 ({pre['objective'].upper()}, {pre['steps']} steps, {pre['train_time_s']:.0f} s): validation loss "
                     f"{pre['validation_loss_first_eval']:.3f} at the first evaluation -> {pre['validation_loss']:.3f} at the best "
                     f"(perplexity {pre['validation_perplexity']:.1f}).")  # fmt: skip
        if pre["fresh_head"]:
            lines.append(f"{original} ships without an {pre['objective'].upper()} head: {len(pre['fresh_head'])} tensors were "
                         f"initialised fresh ({', '.join(pre['fresh_head'][:3])}, ...).")  # fmt: skip
    ft = train_config(cfg.finetune)
    lines += ["", f"Stage 2: {ft.method} fine-tuning on {ft.dataset} ({ft.max_train_samples or 'all'} labels).", "",
              "| start from | test acc (mean ± sd) | macro-F1 | seeds | train s/run |", "|---|---|---|---|---|"]  # fmt: skip
    for stage in ("adapted", "original"):
        rs = [r for r in rows if r["stage"] == stage]
        if rs:
            acc, f1 = mean_std([r["test_accuracy"] for r in rs]), mean_std([r["test_macro_f1"] for r in rs])
            lines.append(f"| {stage} | {acc[0]:.3f} ± {acc[1]:.3f} | {f1[0]:.3f} ± {f1[1]:.3f} | {len(rs)} | {mean_std([r['train_time_s'] for r in rs])[0]:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(recipe_main(DaptStudy, study, sys.argv[1:]))
