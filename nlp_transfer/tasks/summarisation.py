"""Summarisation: document -> summary with a decoder (prompt + summary, loss on the summary only) or a
seq2seq model (source -> target), scored by generating summaries and computing ROUGE.

Why it looks like this:
- Prompt tokens are masked out of the labels (-100), so the model learns to summarise, not to copy
  articles; the document is the part cut to fit the context, never the summary (tasks/prompts.py).
- Evaluation gives the teacher-forced loss on every example and ROUGE on generated summaries; during
  training only the first `eval_generate_samples` validation examples are generated, because greedy
  generation is most of the evaluation cost on a CPU. The test split is always generated in full.
- `before_training` scores the untouched base on the test split (adapters switched off), and the
  final test metrics report the gain over it with a paired bootstrap interval: on a test split of
  ~20 examples, a gain without its interval misleads.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import PreTrainedTokenizerBase

from nlp_transfer.catalog import ResolvedModel
from nlp_transfer.data import sources, validate
from nlp_transfer.errors import ConfigError
from nlp_transfer.rundir import SAMPLES_FILE
from nlp_transfer.tasks import generation
from nlp_transfer.tasks.base import Task
from nlp_transfer.tasks.generation import IGNORE, SummarisationCollator
from nlp_transfer.tasks.prompts import PromptFormat, context_length, pick_style
from nlp_transfer.tasks.summary_model import (
    generator_class,
    load_generator,
    load_zero_shot_summariser,  # noqa: F401  (old import path of demo/registry.py)
)
from nlp_transfer.train_config import TrainConfig

logger = logging.getLogger("nlp_transfer")
N_SAMPLES = 5  # example summaries written to samples.jsonl


@dataclass
class Scored:
    """One evaluation: the report, and per-example results for pairing and samples (by example id)."""

    metrics: dict[str, Any]
    predictions: dict[int, str]
    per_example: dict[str, list[float]]


def pack(rows: list[dict[str, list[int]]], max_tokens: int) -> list[dict[str, list[int]]]:
    """Concatenate examples into rows of <= max_tokens. Position ids restart at each example, which is
    how transformers' mask builder (given no attention_mask) keeps packed examples from seeing each other."""
    packed: list[dict[str, list[int]]] = []
    for row in rows:
        n = len(row["input_ids"])
        if not packed or len(packed[-1]["input_ids"]) + n > max_tokens:
            packed.append({"input_ids": [], "labels": [], "position_ids": []})
        packed[-1]["input_ids"] += row["input_ids"]
        packed[-1]["labels"] += row["labels"]
        packed[-1]["position_ids"] += list(range(n))
    return packed


class SummarisationTask(Task):
    name = "summarisation"
    peft_task = "causal_lm"  # "seq2seq_lm" once build_model sees an encoder-decoder

    def __init__(self, cfg: TrainConfig):
        if cfg.metric_for_best == "macro_f1":  # the classification default; meaningless here
            cfg.metric_for_best = "rougeL" if cfg.eval_generate_samples else "loss"
            logger.info("summarisation: metric_for_best = %s", cfg.metric_for_best)
        if cfg.metric_for_best.startswith("rouge") and not cfg.eval_generate_samples:
            raise ConfigError(
                "metric_for_best is a ROUGE score but eval_generate_samples is 0; use metric_for_best: loss"
            )
        super().__init__(cfg)
        self.references: dict[str, list[str]] = {}
        self.documents: dict[str, list[str]] = {}
        self.zero_shot: Scored | None = None
        self.test: Scored | None = None
        self.family = "decoder"
        self.precision = "no"  # the run's autocast, set at the first evaluation; predictors generate under it

    @staticmethod
    def model_class(meta: dict[str, Any]) -> tuple[type, dict[str, Any]]:
        return generator_class(meta.get("family", "decoder")), {}

    def load_data(self) -> datasets.DatasetDict:
        cfg = self.cfg
        raw = sources.load_source(cfg.dataset, cfg.seed)
        raw = sources.ensure_splits(raw, cfg.train_split, cfg.validation_split, cfg.test_split, cfg.seed)
        data = validate.summarisation(raw, cfg.text_column, cfg.summary_column)
        for split, cap in (
            ("train", cfg.max_train_samples),
            ("validation", cfg.max_eval_samples),
            ("test", cfg.max_eval_samples),
        ):
            if cap and split in data:
                data[split] = data[split].select(range(min(cap, len(data[split]))))
        for split, ds in data.items():
            self.documents[split], self.references[split] = list(ds["document"]), list(ds["summary"])
        return data

    def build_model(self, resolved: ResolvedModel, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
        self.prompt = PromptFormat(tokenizer, pick_style(tokenizer, resolved.family))
        self.family = resolved.family
        if self.family == "seq2seq":
            self.peft_task = "seq2seq_lm"
            if self.cfg.packing:
                raise ConfigError("packing is for decoders; seq2seq inputs are not concatenated")
        model = load_generator(resolved.path, resolved.family, self.cfg.trust_remote_code)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.context = context_length(model.config, tokenizer)
        return model

    def tokenize(
        self, data: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase
    ) -> datasets.DatasetDict:
        cfg, prompt = self.cfg, self.prompt

        def encode(split: str, i: int) -> dict[str, Any]:
            doc, summary = self.documents[split][i], self.references[split][i]
            row: dict[str, Any] = prompt.training_example(
                doc, summary, cfg.max_source_tokens, cfg.max_target_tokens, self.context
            )
            if split != "train":
                row["prompt_ids"] = prompt.prompt_ids(
                    doc, cfg.max_source_tokens, reserve=cfg.max_new_tokens, context=self.context
                )
                row["example_id"] = i
            return row

        out = {}
        for split, ds in data.items():
            rows = [encode(split, i) for i in range(len(ds))]
            cut = sum(
                1 for r in rows if len([t for t in r["labels"] if t != IGNORE]) >= cfg.max_target_tokens
            )
            if cut:
                logger.warning(
                    "%s: %d of %d summaries reach max_target_tokens=%d and may be cut",
                    split,
                    cut,
                    len(rows),
                    cfg.max_target_tokens,
                )
            if split == "train" and cfg.packing:
                limit = cfg.max_source_tokens + cfg.max_target_tokens + prompt.overhead
                rows = pack(rows, min(limit, self.context or limit))
                logger.info("packing: %d training examples in %d rows", len(ds), len(rows))
            out[split] = datasets.Dataset.from_list(rows)
        return datasets.DatasetDict(out)

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> SummarisationCollator:
        return SummarisationCollator(tokenizer.pad_token_id, left_pad_prompts=self.family != "seq2seq")

    def _example_losses(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example sum of token losses and label-token counts, from logits at label positions only."""
        labels = batch["labels"]
        # Decoders get no labels: that skips the model's own loss over fp32 logits at every position.
        # Seq2seq models need them to build their decoder inputs.
        inputs = {k: v for k, v in batch.items() if k != "labels" or self.family == "seq2seq"}
        logits = model(**inputs).logits
        if self.family != "seq2seq":
            logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels != IGNORE
        token_loss = F.cross_entropy(logits[mask].float(), labels[mask], reduction="none")
        rows = mask.nonzero()[:, 0]
        sums = torch.zeros(labels.shape[0], device=labels.device).index_add_(0, rows, token_loss)
        return sums, mask.sum(1)

    def _score(
        self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str, cap: int | None
    ) -> Scored:
        max_new, eos = self.cfg.max_new_tokens, self.prompt.tokenizer.eos_token_id
        self.precision = accelerator.mixed_precision  # generate() runs outside the forward's autocast
        pad_id = self.prompt.tokenizer.pad_token_id
        unwrapped = accelerator.unwrap_model(model)  # generate() lives on the model, not the DDP wrapper
        ids, sums, counts, tokens, wanted, capped = [], [], [], [], [], []
        gen_time, start = 0.0, time.perf_counter()
        with torch.no_grad():
            for batch in loader:
                gen_ids, gen_mask = batch.pop("gen_input_ids"), batch.pop("gen_attention_mask")
                example_id = batch.pop("example_id")
                loss_sum, count = self._example_losses(model, batch)
                want = example_id < cap if cap is not None else torch.ones_like(example_id, dtype=torch.bool)
                new = torch.full((len(example_id), max_new), pad_id, dtype=torch.long, device=gen_ids.device)
                hit = torch.zeros_like(want)
                if self._any_rank(accelerator, want):  # the whole batch: sharded models need every rank
                    t0 = time.perf_counter()
                    out = generation.generate(
                        unwrapped, self.prompt.tokenizer, gen_ids, gen_mask, max_new, self.precision
                    )
                    gen_time += time.perf_counter() - t0
                    new[:, : out.shape[1]] = out
                    hit = generation.hit_cap(out, eos, max_new).to(hit.device)
                gathered = accelerator.gather_for_metrics((example_id, loss_sum, count, new, want, hit))
                for store, value in zip((ids, sums, counts, tokens, wanted, capped), gathered, strict=True):
                    store.append(value.cpu())
        example_ids, want_all = torch.cat(ids), torch.cat(wanted)
        total = torch.cat(counts).sum().clamp(min=1)
        metrics: dict[str, Any] = {
            "loss": float(torch.cat(sums).sum() / total),
            "examples": int(example_ids.numel()),
        }
        order = sorted(int(i) for i in example_ids[want_all])
        rows = {int(i): row for i, row, w in zip(example_ids, torch.cat(tokens), want_all, strict=True) if w}
        predictions = {i: self.prompt.decode(rows[i]) for i in order}
        per_example: dict[str, list[float]] = {}
        if order:
            refs = [self.references[split][i] for i in order]
            report, per_example = generation.score([predictions[i] for i in order], refs)
            metrics.update(report)
            metrics["hit_max_new_tokens"] = int(torch.cat(capped)[want_all].sum())
            metrics["generate_time_s_per_example"] = gen_time / len(order)  # this process's; rough cost
        metrics["eval_time_s"] = time.perf_counter() - start
        return Scored(metrics, predictions, per_example)

    @staticmethod
    def _any_rank(accelerator: Accelerator, want: torch.Tensor) -> bool:
        """Whether any process wants summaries from this batch: under ZeRO-3/FSDP every rank must
        join every generate() call, or the ones that skip leave the others waiting forever."""
        if accelerator.num_processes == 1:
            return bool(want.any())
        return bool(accelerator.reduce(want.any().long(), reduction="sum").item() > 0)

    def evaluate(
        self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str
    ) -> dict[str, Any]:
        if split != "test":
            return self._score(accelerator, model, loader, split, self.cfg.eval_generate_samples).metrics
        self.test = self._score(accelerator, model, loader, split, None)
        metrics = dict(self.test.metrics)
        if self.zero_shot is not None:
            metrics["zero_shot"] = self.zero_shot.metrics
            metrics["gain_vs_zero_shot"] = generation.gains(
                self.zero_shot.per_example, self.test.per_example, seed=self.cfg.seed
            )
            logger.info(
                "test rougeL %.4f vs zero-shot %.4f (gain %+.4f, 95%% CI %+.4f..%+.4f, n=%d)",
                metrics["rougeL"], self.zero_shot.metrics["rougeL"], metrics["gain_vs_zero_shot"]["rougeL"]["mean_diff"],
                *metrics["gain_vs_zero_shot"]["rougeL"]["ci95"], metrics["n"],
            )  # fmt: skip
        return metrics

    def before_training(
        self, accelerator: Accelerator, model: torch.nn.Module, eval_loaders: dict[str, Any]
    ) -> None:
        """Score the untrained model on the test split: the zero-shot baseline every run reports."""
        if not self.cfg.eval_zero_shot or "test" not in eval_loaders:
            return
        unwrapped = accelerator.unwrap_model(model)
        # LoRA/IA3 start as the identity anyway; prompt-style adapters do not, so switch adapters off.
        no_adapter = unwrapped.disable_adapter() if hasattr(unwrapped, "disable_adapter") else nullcontext()
        model.eval()
        with no_adapter:
            self.zero_shot = self._score(accelerator, model, eval_loaders["test"], "test", None)
        model.train()
        logger.info(
            "zero-shot test: rougeL %.4f on %d examples",
            self.zero_shot.metrics["rougeL"],
            self.zero_shot.metrics["n"],
        )

    def extra_files(self) -> dict[str, str]:
        """samples.jsonl: the first test examples with reference, tuned and zero-shot summaries."""
        if self.test is None:
            return {}
        lines = []
        for i in sorted(self.test.predictions)[:N_SAMPLES]:
            doc = self.documents["test"][i]
            sample = {
                "example_id": i,
                "document_start": doc[:400] + ("..." if len(doc) > 400 else ""),
                "reference": self.references["test"][i],
            }
            sample["summary"], sample["rougeL"] = self.test.predictions[i], self._rouge_l(self.test, i)
            if self.zero_shot is not None:
                sample["zero_shot_summary"], sample["zero_shot_rougeL"] = (
                    self.zero_shot.predictions.get(i),
                    self._rouge_l(self.zero_shot, i),
                )
            lines.append(json.dumps(sample, ensure_ascii=False))
        return {SAMPLES_FILE: "\n".join(lines) + "\n"}

    @staticmethod
    def _rouge_l(scored: Scored, example_id: int) -> float | None:
        order = sorted(scored.predictions)
        return (
            round(scored.per_example["rougeL"][order.index(example_id)], 4)
            if example_id in scored.predictions
            else None
        )

    def metadata(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "family": self.family,
            **self.prompt.metadata(),
            "max_source_tokens": cfg.max_source_tokens,
            "max_new_tokens": cfg.max_new_tokens,
            "mixed_precision": self.precision,
        }
