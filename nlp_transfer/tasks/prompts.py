"""The one place that turns (document, summary) into token ids, for training, evaluation and inference.

Why one place: a model fine-tuned on one prompt and scored or served with a slightly different one
(another instruction, a missing BOS, a space before the summary) loses much of what it learned, and
the zero-shot baseline is only a fair comparison when it sees exactly the prompt the tuned model saw.

Three styles, chosen from the model and its tokenizer:
- `chat`: decoders whose tokenizer has a chat template. The document goes into a user turn after
  INSTRUCTION; the summary is the assistant turn, ended by the eos token (`<|im_end|>` for SmolLM2).
- `plain`: other decoders: "Summarise:\\n{document}\\nSummary: {summary}<eos>".
- `seq2seq`: encoder-decoders (T5, BART): encoder input "summarize: {document}", decoder target the summary.

Decoder prompts are built as ids: prefix + document ids + suffix, so the document can be cut at a
token boundary to fit the context while the instruction, the answer cue and the summary stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from nlp_transfer.errors import ConfigError

INSTRUCTION = "Summarise the following text in one or two sentences."
PLAIN_PREFIX, PLAIN_SUFFIX = "Summarise:\n", "\nSummary:"
SEQ2SEQ_PREFIX = "summarize: "  # the task prefix T5 was pretrained with; harmless for BART
STYLES = ("chat", "plain", "seq2seq")
_SLOT = "\x00DOCUMENT\x00"  # placeholder that no chat template alters
_CHARS_PER_TOKEN_BOUND = 12  # tokenize only this many characters per kept token (English averages ~4)


def pick_style(tokenizer: PreTrainedTokenizerBase, family: str) -> str:
    if family == "seq2seq":
        return "seq2seq"
    if family != "decoder":
        raise ConfigError(
            f"summarisation needs a decoder (GPT-2, Llama, ...) or seq2seq (T5, BART) model, not an {family}"
        )
    return "chat" if getattr(tokenizer, "chat_template", None) else "plain"


def context_length(model_config: Any, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """Longest sequence the model can attend over, or None when it has no fixed limit (T5)."""
    limits = [getattr(model_config, k, None) for k in ("max_position_embeddings", "n_positions", "n_ctx")]
    limits = [v for v in limits if isinstance(v, int) and v > 0]
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limits.append(int(tokenizer.model_max_length))
    return min(limits) if limits else None


@dataclass
class PromptFormat:
    tokenizer: PreTrainedTokenizerBase
    style: str
    instruction: str = INSTRUCTION

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError(f"unknown prompt style {self.style!r} (styles: {', '.join(STYLES)})")
        tok = self.tokenizer
        if self.style == "chat":
            messages = [{"role": "user", "content": f"{self.instruction}\n\n{_SLOT}"}]
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prefix, suffix = text.split(_SLOT)  # the rendered template already holds the special tokens
            self.prefix_ids = tok(prefix, add_special_tokens=False).input_ids
            self.suffix_ids = tok(suffix, add_special_tokens=False).input_ids
        elif self.style == "plain":
            self.prefix_ids = self._leading_specials() + tok(PLAIN_PREFIX, add_special_tokens=False).input_ids
            self.suffix_ids = tok(PLAIN_SUFFIX, add_special_tokens=False).input_ids
        else:
            self.prefix_ids, self.suffix_ids = [], []
        if self.style != "seq2seq" and tok.eos_token_id is None:
            raise ConfigError("decoder summarisation needs a tokenizer with an eos token to end summaries")

    @classmethod
    def from_meta(cls, tokenizer: PreTrainedTokenizerBase, meta: dict[str, Any]) -> PromptFormat:
        """The format a run was trained with (recorded by `metadata()`), not today's defaults."""
        return cls(tokenizer, meta["prompt_style"], meta.get("instruction", INSTRUCTION))

    def metadata(self) -> dict[str, str]:
        return {"prompt_style": self.style, "instruction": self.instruction}

    def _leading_specials(self) -> list[int]:
        """The BOS a Llama-style tokenizer adds in front of text (nothing for GPT-2)."""
        with_specials = self.tokenizer("x").input_ids
        bare = self.tokenizer("x", add_special_tokens=False).input_ids
        return with_specials[: with_specials.index(bare[0])] if bare and bare[0] in with_specials else []

    @property
    def overhead(self) -> int:
        """Prompt tokens that are not document tokens."""
        return len(self.prefix_ids) + len(self.suffix_ids)

    def prompt_ids(
        self, document: str, max_source_tokens: int, reserve: int = 0, context: int | None = None
    ) -> list[int]:
        """Model input for `document`: the document cut to `max_source_tokens`, and further so that
        prompt + `reserve` tokens (the summary, or the generation budget) fit in `context`."""
        if self.style == "seq2seq":
            text = SEQ2SEQ_PREFIX + document.strip()[: max_source_tokens * _CHARS_PER_TOKEN_BOUND]
            return self.tokenizer(text, truncation=True, max_length=max_source_tokens).input_ids
        budget = max_source_tokens
        if context is not None:
            budget = min(budget, context - self.overhead - reserve)
            if budget < 1:
                raise ConfigError(
                    f"no room for the document: the context holds {context} tokens, the prompt takes {self.overhead} "
                    f"and {reserve} are kept for the summary; lower max_target_tokens / max_new_tokens"
                )
        return self.prefix_ids + self._document_ids(document.strip(), budget) + self.suffix_ids

    def _document_ids(self, text: str, budget: int) -> list[int]:
        """The first `budget` tokens of `text`, tokenizing only a generous prefix of long documents
        (wiki_lead bodies run to 13k words; tokens average ~4 characters)."""
        head = text[: budget * _CHARS_PER_TOKEN_BOUND]
        ids = self.tokenizer(head, add_special_tokens=False).input_ids
        if len(ids) < budget and len(head) < len(text):  # rare: very long tokens; take the whole text
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return ids[:budget]

    def target_ids(self, summary: str, max_target_tokens: int) -> list[int]:
        """Summary tokens the model learns to produce, ending with eos so it learns to stop."""
        if self.style == "seq2seq":
            return self.tokenizer(
                text_target=summary.strip(), truncation=True, max_length=max_target_tokens
            ).input_ids
        text = (" " if self.style == "plain" else "") + summary.strip()
        ids = self.tokenizer(text, add_special_tokens=False).input_ids[: max_target_tokens - 1]
        return ids + [self.tokenizer.eos_token_id]

    def training_example(
        self, document: str, summary: str, max_source_tokens: int, max_target_tokens: int, context: int | None
    ) -> dict[str, list[int]]:
        """input_ids and labels; for decoders every prompt position is -100, so only the summary is learned."""
        target = self.target_ids(summary, max_target_tokens)
        if self.style == "seq2seq":
            source = self.prompt_ids(document, max_source_tokens)
            return {"input_ids": source, "attention_mask": [1] * len(source), "labels": target}
        prompt = self.prompt_ids(document, max_source_tokens, reserve=len(target), context=context)
        ids = prompt + target
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(prompt) + target}

    def decode(self, ids: Any) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()
