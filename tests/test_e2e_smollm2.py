"""End to end on the real built-in SmolLM2-135M (slow: about a minute on an idle 2-core CPU).

A few steps on a few wiki_lead examples with short prompts: the shipped summarisation config trains,
scores itself and the zero-shot base, exports, predicts (batch and stream), and merges to the same
outputs; the decoder sentiment config trains a classifier on the same model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nlp_transfer.config import parse_config
from nlp_transfer.merge import merge_run
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from nlp_transfer.train_config import TrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # GGUF expansion + a real 135M decoder on CPU
QUICK = [
    "--max_steps",
    "2",
    "--batch_size",
    "2",
    "--eval_batch_size",
    "2",
    "--report_to",
    "none",
    "--precision",
    "fp32",
]


def test_summarize_smollm2_lora_config_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "sum"
    cfg = parse_config(TrainConfig, [
        "--config", "recipes/configs/summarize_smollm2_lora.yaml", "--output_dir", str(out), *QUICK,
        "--max_train_samples", "4", "--max_eval_samples", "2", "--max_source_tokens", "96", "--max_new_tokens", "12",
    ])  # fmt: skip
    metrics = run(cfg)
    test = metrics["test"]
    assert test["n"] == 2 and test["zero_shot"]["n"] == 2 and "gain_vs_zero_shot" in test
    assert 0 <= test["rougeL"] <= 1 and metrics["trainable_params"] < metrics["total_params"] / 50
    meta = json.loads((out / "nlp_transfer.json").read_text())
    assert meta["prompt_style"] == "chat" and meta["family"] == "decoder"
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2

    predictor = load_predictor(str(out))
    doc = "The Amazon River in South America is the largest river by discharge volume of water in the world."
    summary = predictor.summarise([doc], max_new_tokens=12)[0]
    assert summary and list(predictor.stream(doc, max_new_tokens=12))[-1] == summary

    merged = load_predictor(str(merge_run(out, tmp_path / "merged")))
    assert merged.summarise([doc], max_new_tokens=12)[0] == summary
    ids, mask = predictor._inputs([doc], 12)
    with torch.no_grad():
        torch.testing.assert_close(
            merged.model(ids, attention_mask=mask).logits,
            predictor.model(ids, attention_mask=mask).logits,
            atol=1e-4,
            rtol=1e-4,
        )


def test_sentiment_smollm2_lora_config_trains_a_decoder_classifier(tmp_path: Path) -> None:
    cfg = parse_config(TrainConfig, [
        "--config", "recipes/configs/sentiment_smollm2_lora.yaml", "--output_dir", str(tmp_path / "cls"), *QUICK,
        "--max_train_samples", "8", "--max_eval_samples", "8",
    ])  # fmt: skip
    metrics = run(cfg)
    assert metrics["test"]["examples"] == 8 and 0 <= metrics["test"]["accuracy"] <= 1
    predictor = load_predictor(str(tmp_path / "cls"))
    assert predictor.predict(["a gorgeous, moving film"])[0]["label"] in ("negative", "positive")
