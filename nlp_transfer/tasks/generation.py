"""Batching, greedy generation and ROUGE scoring shared by summarisation training and inference.

Why these choices: on a CPU, generation dominates evaluation time, so it is batched, greedy (one
beam) and uses the KV cache, with a hard cap on new tokens. Decoder prompts are padded on the left so
every row's next token comes right after its own prompt (generate derives position ids from the
attention mask, so absolute-position models like GPT-2 see the same positions as unpadded).
Encoder inputs (T5, BART) are padded on the right, as the encoder was trained.

Precision: a run trains under autocast (bf16 on most CPUs here), but `model.generate` bypasses the
autocast that Accelerate wraps around a prepared model's forward. So generation enters the run's
autocast itself: summaries are generated at the precision the run trains and is scored with, and an
adapter run's frozen base, stored in bf16 (`cpu_speed.store_frozen_linears`), meets bf16 inputs
instead of crashing on fp32 ones. Finished runs record that precision (`mixed_precision` in their
metadata) so predictors loaded later generate the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase

from nlp_transfer.metrics import load_metric, paired_bootstrap, rouge_metrics

IGNORE = -100
COMPARED = ("rouge1", "rouge2", "rougeL")


def pad(seqs: Sequence[Sequence[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max((len(s) for s in seqs), default=0)
    rows = [
        ([value] * (width - len(s)) + list(s)) if left else (list(s) + [value] * (width - len(s)))
        for s in seqs
    ]
    return torch.tensor(rows, dtype=torch.long).reshape(len(seqs), width)


def pad_prompts(
    prompts: Sequence[Sequence[int]], pad_id: int, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask for generation."""
    return pad(prompts, pad_id, left), pad([[1] * len(p) for p in prompts], 0, left)


@dataclass
class SummarisationCollator:
    """Right-padded training inputs (+ `labels` with -100) and, for evaluation rows, the bare prompts
    as `gen_input_ids`/`gen_attention_mask` plus `example_id`, so one pass gives loss and summaries."""

    pad_id: int
    left_pad_prompts: bool

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"input_ids": pad([f["input_ids"] for f in features], self.pad_id)}
        batch["labels"] = pad([f["labels"] for f in features], IGNORE)
        if "position_ids" in features[0]:  # packed rows: no attention mask, positions restart per example
            width = batch["input_ids"].shape[1]
            batch["position_ids"] = pad([f["position_ids"] for f in features], 0)
            # padding continues as its own "sequence", so no real token attends to it
            for row, f in enumerate(features):
                n = len(f["position_ids"])
                batch["position_ids"][row, n:] = torch.arange(width - n)
            batch["use_cache"] = False  # with a cache object, transformers skips its packed-sequence masks
        else:
            batch["attention_mask"] = pad([f["attention_mask"] for f in features], 0)
        if "prompt_ids" in features[0]:
            prompts = [f["prompt_ids"] for f in features]
            batch["gen_input_ids"], batch["gen_attention_mask"] = pad_prompts(
                prompts, self.pad_id, self.left_pad_prompts
            )
            batch["example_id"] = torch.tensor([f["example_id"] for f in features], dtype=torch.long)
        return batch


def greedy_config(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, max_new_tokens: int
) -> GenerationConfig:
    """The model's own generation config (keeps decoder_start_token_id etc.) forced to plain greedy."""
    base = getattr(model, "generation_config", None)
    config = copy.deepcopy(base) if base is not None else GenerationConfig()
    config.update(
        do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, max_length=None, use_cache=True,
        temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    return config


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(model: torch.nn.Module, precision: str | None) -> torch.dtype | None:
    """The dtype to generate under: the run's ("bf16"/"fp16"; "no", "fp32" or None mean none), else
    the half dtype a linear layer is stored in, since such a model cannot run outside autocast."""
    if precision in AUTOCAST_DTYPES:
        return AUTOCAST_DTYPES[precision]
    if precision not in (None, "no", "fp32"):
        raise ValueError(f"precision must be bf16, fp16, fp32 or no, not {precision!r}")
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype in AUTOCAST_DTYPES.values():
            return module.weight.dtype
    return None


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    precision: str | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Only the new tokens, (batch, <= max_new_tokens), padded with the pad id after each row's eos.

    `precision`: the run's autocast ("bf16", "fp16"; "no"/None = fp32 unless the model stores half
    weights), entered here because generate() runs outside the autocast around a prepared forward.
    """
    dtype = autocast_dtype(model, precision)
    with torch.autocast(input_ids.device.type, dtype=dtype, enabled=dtype is not None):
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=greedy_config(model, tokenizer, max_new_tokens),
            **kwargs,
        )
    is_seq2seq = getattr(getattr(model, "config", None), "is_encoder_decoder", False)
    return out[:, 1:] if is_seq2seq else out[:, input_ids.shape[1] :]  # drop decoder_start / the prompt


def hit_cap(new_tokens: torch.Tensor, eos_id: int | None, max_new_tokens: int) -> torch.Tensor:
    """Rows that ran to the token cap without ending: truncated summaries (or repetition loops)."""
    if new_tokens.shape[1] < max_new_tokens:
        return torch.zeros(new_tokens.shape[0], dtype=torch.bool)
    return ~(new_tokens == eos_id).any(dim=1)


def per_example_rouge(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    scores = load_metric("rouge").compute(
        predictions=predictions,
        references=references,
        rouge_types=list(COMPARED),
        use_stemmer=True,
        use_aggregator=False,
    )
    return {k: [float(v) for v in scores[k]] for k in COMPARED}


def score(predictions: list[str], references: list[str]) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Mean ROUGE-1/2/L(sum), rougeL CI, mean words and n (the report), plus per-example scores (for pairing)."""
    return rouge_metrics(predictions, references), per_example_rouge(predictions, references)


def gains(baseline: dict[str, list[float]], system: dict[str, list[float]], seed: int = 0) -> dict[str, Any]:
    """system - baseline per ROUGE type on the same examples, with paired-bootstrap 95% intervals."""
    out: dict[str, Any] = {}
    for key in COMPARED:
        out[key] = paired_bootstrap(baseline[key], system[key], seed=seed)
        out[key]["wins"] = int(np.sum(np.asarray(system[key]) > np.asarray(baseline[key])))
        out[key]["losses"] = int(np.sum(np.asarray(system[key]) < np.asarray(baseline[key])))
    return out
