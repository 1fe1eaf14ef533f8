"""Sequence classification on decoders (tiny GPT-2 and Llama): the head reads the last real token.

Decoders have no [CLS]; transformers' *ForSequenceClassification pools the rightmost token that is
not the pad token. These tests pin that down under right and left padding (pad = eos here, as for
GPT-2 and SmolLM2), and that the toolkit trains and reloads such a classifier with its head.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from nlp_transfer import catalog
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from nlp_transfer.tasks.classification import build_classifier

TEXTS = ["the cast was great", "a dull and tedious plot that was really quite boring", "superb"]


pytestmark = pytest.mark.usefixtures("one_thread")


def classifier(tiny_models: dict, name: str) -> tuple[torch.nn.Module, object]:
    resolved = catalog.resolve_model(str(tiny_models[name]))
    tok = catalog.load_tokenizer(resolved)
    assert tok.pad_token_id == tok.eos_token_id  # the decoder case: no pad token of its own
    torch.manual_seed(0)
    return build_classifier(resolved.path, ["negative", "positive"], tok.pad_token_id, False).eval(), tok


@pytest.mark.parametrize("name", ["gpt2", "llama"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_decoder_classifier_pools_the_last_real_token(tiny_models: dict, name: str, side: str) -> None:
    model, tok = classifier(tiny_models, name)
    tok.padding_side = side
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    # Left padding shifts absolute positions (GPT-2); positions from the mask undo that, as generate() does.
    position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(**enc, position_ids=position_ids, output_hidden_states=True)
        width = enc["input_ids"].shape[1]
        last = enc["attention_mask"].sum(-1) - 1 if side == "right" else torch.full((3,), width - 1)
        assert (
            last.tolist() != [width - 1] * 3 or side == "left"
        )  # right padding: rows end at different places
        expected = model.score(out.hidden_states[-1])[torch.arange(3), last]
        torch.testing.assert_close(out.logits, expected)  # pooled exactly at the last non-pad position
        for i, text in enumerate(TEXTS):  # and equal to classifying each text alone, without padding
            alone = model(**tok([text], return_tensors="pt")).logits[0]
            torch.testing.assert_close(out.logits[i], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_decoder_classifier_learns_and_predicts_like_batched(
    tiny_models: dict, review_csv: Path, tmp_path: Path, name: str
) -> None:
    # Full fine-tuning: a LoRA adapter on a *random* tiny base learns too slowly for a seconds-long test.
    metrics = run(tiny_config(tiny_models[name], review_csv, tmp_path / name, lr=1e-3, epochs=6))
    assert metrics["test"]["accuracy"] >= 0.8, metrics["test"]  # chance is 0.5
    predictor = load_predictor(str(tmp_path / name))
    assert predictor.model.config.pad_token_id == predictor.tokenizer.pad_token_id
    one_by_one = torch.cat([predictor.logits([t]) for t in TEXTS])  # the predictor pads on the right
    torch.testing.assert_close(predictor.logits(TEXTS), one_by_one, atol=1e-5, rtol=1e-4)


def test_decoder_lora_classifier_saves_its_head_and_reloads_exactly(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    out = tmp_path / "lora"
    run(
        tiny_config(
            tiny_models["llama"],
            review_csv,
            out,
            method="lora",
            method_args={"r": 4},
            max_steps=3,
            test_split=None,
        )
    )
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert any(".score." in k for k in f.keys()), "the new head must be saved with the adapter"
    torch.testing.assert_close(
        load_predictor(str(out)).logits(TEXTS), load_predictor(str(out)).logits(TEXTS), rtol=0, atol=0
    )
