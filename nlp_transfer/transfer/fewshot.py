"""Few-shot study: k labelled examples per class, several seeds, mean and spread; zero-shot beside it.

Methods: `embed_lr` (frozen mean-pooled embeddings + logistic regression: seconds, and strong at
small k) and any fine-tuning method of the registry, run through the pipeline on the same k-per-class
subset. With k per class, validation for model selection is capped too (`validation_size`), and the
same validation examples serve every method, so comparisons stay fair.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.config import opt
from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.common import mean_std, train_config
from nlp_transfer.transfer.embed import embed
from nlp_transfer.transfer.study import append_row, budget_run, read_rows
from nlp_transfer.transfer.tracked import k_per_class, load_classification


def embedding_logreg(train_texts: list[str], train_labels: list[int], test_texts: list[str], test_labels: list[int],
                     model: str = "minilm-l6", c: float = 1.0) -> float:  # fmt: skip
    """Test accuracy of logistic regression on frozen, normalised sentence embeddings."""
    from sklearn.linear_model import LogisticRegression

    if len(set(train_labels)) < 2:
        majority = max(set(train_labels), key=list(train_labels).count)
        return float(np.mean(np.asarray(test_labels) == majority))
    clf = LogisticRegression(C=c, max_iter=2000).fit(embed(list(train_texts), model), list(train_labels))
    return float(np.mean(clf.predict(embed(list(test_texts), model)) == np.asarray(test_labels)))


@dataclass
class FewShotConfig:
    train: dict = opt({}, "TrainConfig keys shared by every fine-tuning run (model, dataset, precision, ...)")
    ks: list[int] = opt([8, 16, 32], "labelled examples per class")
    seeds: list[int] = opt([1, 2, 3, 4, 5], "one draw of the k-per-class subset (and of the split) per seed")
    methods: dict = opt({"embed_lr": {}, "full": {"lr": 1e-4}}, "label -> TrainConfig overrides; embed_lr is the frozen-embedding baseline")
    min_steps: int = opt(40, "at least this many optimizer steps per fine-tuning run")
    validation_size: int = opt(64, "validation examples for model selection (few-shot: few labels there too)")
    zero_shot: list[str] = opt(["embedding", "prompt"], "zero-shot baselines: embedding (label descriptions), prompt (instruct decoder)")
    embed_model: str = opt("minilm-l6", "encoder of embed_lr and the embedding zero-shot")
    prompt_model: str = opt("smollm2-135m", "instruct decoder of the prompted zero-shot")
    prompt_question: str = opt("Is the sentiment of this movie review positive or negative?", "question put to the decoder")
    prompt_max_examples: int = opt(400, "test examples the prompted zero-shot scores (it is the slow one); 0 = all")
    label_descriptions: dict = opt({}, "label -> description(s) for the embedding zero-shot")
    output_dir: str = opt("runs/fewshot", "run directories, results.jsonl (reruns skip finished runs) and report.md")

    def validate(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ConfigError("ks must be positive integers")
        for z in self.zero_shot:
            if z not in ("embedding", "prompt"):
                raise ConfigError(f"unknown zero-shot baseline {z!r}: use embedding, prompt")


def run_study(cfg: FewShotConfig) -> list[dict[str, Any]]:
    root = Path(cfg.output_dir)
    results = root / "results.jsonl"
    done = {(r["method"], r["k"], r["seed"]) for r in read_rows(results)}
    for seed in cfg.seeds:
        data, labels = load_classification(train_config(cfg.train, seed=seed))
        test = data["test"]
        for k in cfg.ks:
            for label, overrides in cfg.methods.items():
                if (label, k, seed) in done:
                    continue
                start = time.perf_counter()
                if label == "embed_lr":
                    idx = k_per_class(data["train"]["label"], k, seed)
                    sub = data["train"].select(idx)
                    row = {"test_accuracy": embedding_logreg(sub["text"], sub["label"], test["text"], test["label"], cfg.embed_model)}
                else:
                    row = budget_run(cfg.train, {"method": label, **(overrides or {})}, seed=seed, per_class=k,
                                     output_dir=root / f"{label}_k{k}_s{seed}", min_steps=cfg.min_steps,
                                     validation_size=cfg.validation_size, track=False)  # fmt: skip
                append_row(results, {"method": label, "k": k, "seed": seed, **row, "wall_time_s": round(time.perf_counter() - start, 1)})
        for z in cfg.zero_shot:
            if (f"zero_shot_{z}", 0, seed) in done or (z == "prompt" and seed != cfg.seeds[0]):
                continue
            start = time.perf_counter()
            append_row(results, {"method": f"zero_shot_{z}", "k": 0, "seed": seed, **zero_shot_row(cfg, z, test, labels),
                                 "wall_time_s": round(time.perf_counter() - start, 1)})  # fmt: skip
    return read_rows(results)


def zero_shot_row(cfg: FewShotConfig, kind: str, test: Any, labels: list[str]) -> dict[str, Any]:
    from nlp_transfer.transfer import zeroshot

    y = np.asarray(test["label"])
    if kind == "embedding":
        pred = zeroshot.embedding_zero_shot(test["text"], labels, cfg.label_descriptions, cfg.embed_model)
        return {"test_accuracy": float(np.mean(np.asarray(pred) == y)), "examples": len(y)}
    n = cfg.prompt_max_examples or len(y)
    out = zeroshot.prompt_zero_shot(test["text"][:n], labels, cfg.prompt_model, cfg.prompt_question)
    return {"test_accuracy": float(np.mean(np.asarray(out["calibrated"]) == y[:n])),
            "test_accuracy_uncalibrated": float(np.mean(np.asarray(out["raw"]) == y[:n])), "examples": n}  # fmt: skip


def markdown(rows: list[dict[str, Any]], title: str = "Few-shot and zero-shot") -> str:
    lines = [f"# {title}", "", "| method | k per class | test acc (mean ± sd) | seeds | wall s/run |", "|---|---|---|---|---|"]
    cells: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["k"]), []).append(r)
    for (method, k), rs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        acc, sd = mean_std([r["test_accuracy"] for r in rs])
        wall = mean_std([r.get("wall_time_s", 0.0) for r in rs])[0]
        extra = ""
        if "test_accuracy_uncalibrated" in rs[0]:
            extra = f" (uncalibrated {rs[0]['test_accuracy_uncalibrated']:.3f}; {rs[0]['examples']} test examples)"
        lines.append(f"| {method} | {k} | {acc:.3f} ± {sd:.3f}{extra} | {len(rs)} | {wall:.0f} |")
    return "\n".join(lines) + "\n"
