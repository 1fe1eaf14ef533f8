"""The summarisation model: the class that generates (`generator_class`, `load_generator` for training),
and summarising with a finished run or with an untuned base model through the very same prompt.

`SummariserPredictor` is what `load_summariser` (the summarisation task's predictor loader in
tasks/spec.py, called by `nlp_transfer.predict.load_predictor`) returns, and what the demo builds on: `summarise` for batches, `stream` for token-by-token display. The zero-shot
predictor exists so that a demo (or a user) can put tuned and untuned side by side fairly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PreTrainedTokenizerBase,
    TextIteratorStreamer,
)

from nlp_transfer import catalog
from nlp_transfer.tasks import generation
from nlp_transfer.tasks.prompts import PromptFormat, context_length, pick_style


def generator_class(family: str) -> type:
    """Decoders generate with a causal LM head; T5/BART through their seq2seq head."""
    return AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM


def load_generator(path: str, family: str, trust_remote_code: bool = False) -> torch.nn.Module:
    return generator_class(family).from_pretrained(
        path,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        dtype=torch.float32,  # fp32 weights; autocast for speed
    )


@dataclass
class SummariserPredictor:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    prompt: PromptFormat
    meta: dict[str, Any]
    max_source_tokens: int = 480
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one generate at a time

    def _prompt_ids(self, text: str, max_new_tokens: int) -> list[int]:
        context = context_length(self.model.config, self.tokenizer)
        return self.prompt.prompt_ids(text, self.max_source_tokens, reserve=max_new_tokens, context=context)

    def _inputs(self, texts: list[str], max_new_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = [self._prompt_ids(t, max_new_tokens) for t in texts]
        return generation.pad_prompts(
            prompts, self.tokenizer.pad_token_id, left=self.prompt.style != "seq2seq"
        )

    def summarise(self, texts: Sequence[str], max_new_tokens: int = 80, batch_size: int = 8) -> list[str]:
        """Greedy summaries, batched with left padding (same outputs as one at a time)."""
        texts, out = list(texts), []  # also accepts a datasets Column
        for i in range(0, len(texts), batch_size):
            ids, mask = self._inputs(texts[i : i + batch_size], max_new_tokens)
            with self._lock:
                new = generation.generate(
                    self.model, self.tokenizer, ids, mask, max_new_tokens, self.meta.get("mixed_precision")
                )
            out += [self.prompt.decode(row) for row in new]
        return out

    def stream(self, text: str, max_new_tokens: int = 80) -> Iterator[str]:
        """Yield the growing summary (cumulative text) as tokens arrive."""
        ids, mask = self._inputs([text], max_new_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def work() -> None:
            with self._lock:
                try:
                    generation.generate(
                        self.model, self.tokenizer, ids, mask, max_new_tokens,
                        self.meta.get("mixed_precision"), streamer=streamer,
                    )  # fmt: skip
                except BaseException as e:  # surface it in the caller's thread, after the stream ends
                    errors.append(e)
                    streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text_so_far = ""
        for piece in streamer:
            text_so_far += piece
            yield text_so_far.strip()
        thread.join()
        if errors:
            raise errors[0]

    def predict(self, texts: list[str], max_new_tokens: int = 80) -> list[dict[str, str]]:
        """What `nlp-transfer predict` prints for a summarisation run."""
        return [{"summary": s} for s in self.summarise(texts, max_new_tokens)]


def load_summariser(run_dir: Path, meta: dict[str, Any], base: str | None = None) -> SummariserPredictor:
    """A finished summarisation run (adapter on its base, or full/merged weights) in eval mode."""
    from transformers import AutoTokenizer

    from nlp_transfer.predict import load_model

    run_dir = Path(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model(
        run_dir, meta, generator_class(meta.get("family", "decoder")), base, dtype=torch.float32
    ).eval()
    prompt = PromptFormat.from_meta(tokenizer, meta)
    return SummariserPredictor(model, tokenizer, prompt, meta, int(meta.get("max_source_tokens", 480)))


def load_zero_shot_summariser(
    model_name: str, max_source_tokens: int = 480, trust_remote_code: bool = False, precision: str = "no"
) -> SummariserPredictor:
    """An untuned base model (built-in name, directory or Hub id) behind the prompt the runs train with;
    `precision` ("bf16", "fp16", "no"): generate under the autocast of the runs it is compared with."""
    resolved = catalog.resolve_model(model_name, trust_remote_code=trust_remote_code)
    tokenizer = catalog.load_tokenizer(resolved, trust_remote_code=trust_remote_code)
    prompt = PromptFormat(tokenizer, pick_style(tokenizer, resolved.family))
    model = load_generator(resolved.path, resolved.family, trust_remote_code).eval()
    meta = {
        "task": "summarisation",
        "base_model": model_name,
        "zero_shot": True,
        "family": resolved.family,
        "mixed_precision": precision,
        **prompt.metadata(),
    }
    return SummariserPredictor(model, tokenizer, prompt, meta, max_source_tokens)
