"""Zero-shot baselines: what a pretrained model gives with no task training at all.

- `embedding_zero_shot`: each label is described in words ("a negative movie review"); a text gets
  the label whose description embedding (mean-pooled MiniLM) is closest by cosine similarity.
- `prompt_zero_shot`: the instruction-tuned decoder is asked the question through its chat template;
  the label whose first token is most likely as the answer wins. Small LMs prefer some answers
  whatever the input, so a calibrated variant (Zhao et al., 2021) divides by the probabilities the
  model gives to a content-free input ("N/A").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nlp_transfer import catalog
from nlp_transfer.transfer.embed import embed

DESCRIPTIONS = {
    "negative": ["a negative movie review", "a bad film, dull and disappointing", "I did not like this movie"],
    "positive": ["a positive movie review", "a good film, moving and entertaining", "I liked this movie"],
}


def descriptions_for(labels: list[str], given: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Descriptions per label: the given ones, else the built-in sentiment ones, else the label name."""
    given = given or {}
    out = {}
    for label in labels:
        value = given.get(label) or DESCRIPTIONS.get(label) or [label]
        out[label] = [value] if isinstance(value, str) else list(value)
    return out


def embedding_zero_shot(texts: list[str], labels: list[str], descriptions: dict[str, Any] | None = None, model: str = "minilm-l6") -> list[int]:
    desc = descriptions_for(labels, descriptions)
    protos = np.stack([embed(desc[label], model).mean(0) for label in labels])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    return (embed(texts, model) @ protos.T).argmax(1).tolist()


def _label_token_ids(tokenizer: Any, label: str) -> list[int]:
    variants = {label, label.capitalize(), " " + label, " " + label.capitalize()}
    return sorted({tokenizer(v, add_special_tokens=False)["input_ids"][0] for v in variants})


@torch.no_grad()
def prompt_zero_shot(
    texts: list[str], labels: list[str], model: str = "smollm2-135m",
    question: str = "Is the sentiment of this movie review positive or negative?", batch_size: int = 16,
) -> dict[str, list[int]]:  # fmt: skip
    """{"raw": predictions, "calibrated": predictions} from next-token scores of the label words."""
    from transformers import AutoModelForCausalLM

    resolved = catalog.resolve_model(model)
    tokenizer = catalog.load_tokenizer(resolved)
    tokenizer.padding_side = "left"
    lm = AutoModelForCausalLM.from_pretrained(resolved.path, use_safetensors=True).eval()
    label_ids = [_label_token_ids(tokenizer, label) for label in labels]

    def prompt(text: str) -> str:
        content = f"{question}\n\nReview: {text}\n\nAnswer with one word: {' or '.join(labels)}."
        return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)

    def scores(batch: list[str]) -> torch.Tensor:
        enc = tokenizer([prompt(t) for t in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        logp = lm(**enc).logits[:, -1].float().log_softmax(-1)
        return torch.stack([logp[:, ids].logsumexp(-1) for ids in label_ids], -1)

    raw = torch.cat([scores(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])
    prior = scores(["N/A"]).squeeze(0)
    return {"raw": raw.argmax(-1).tolist(), "calibrated": (raw - prior).argmax(-1).tolist()}
