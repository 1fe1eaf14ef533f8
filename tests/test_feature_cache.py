"""`frozen` trains its head on cached encoder features: same function as the model, same weights saved."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, DataCollatorWithPadding

from conftest import tiny_config
from nlp_transfer.methods import feature_cache
from nlp_transfer.pipeline import run
from nlp_transfer.tasks.classification import build_classifier


def test_cached_head_computes_the_models_own_logits(tiny_models: dict) -> None:
    torch.manual_seed(0)
    model = build_classifier(str(tiny_models["bert"]), ["neg", "pos"], pad_token_id=0, trust_remote_code=False).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    texts = ["a fine film", "dull and far too long for what it says", "great"]
    rows = [dict(tok(t), labels=i % 2) for i, t in enumerate(texts)]
    loader = DataLoader(rows, batch_size=2, collate_fn=DataCollatorWithPadding(tok))
    cached = feature_cache.encode(Accelerator(cpu=True), model, loader, "test")
    head = feature_cache.CachedFeatureHead(model).eval()
    with torch.no_grad():
        from_cache = head(cached.features, cached.labels).logits
        direct = torch.cat([model(**b).logits for b in loader])
    torch.testing.assert_close(from_cache, direct, atol=1e-5, rtol=1e-5)
    assert {id(p) for p in head.parameters()} <= {id(p) for p in model.parameters()}  # trains the model's own head


def test_frozen_run_trains_on_cache_and_saves_the_whole_model(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_models["bert"], review_csv, tmp_path / "cached", method="frozen", epochs=4)
    metrics = run(cfg)
    assert metrics["train"]["feature_cache_s"] is not None
    assert metrics["train"]["tokens_per_s"] > 0 and metrics["test"]["examples"] == 48
    saved = build_classifier(str(tmp_path / "cached"), ["neg", "pos"], pad_token_id=0, trust_remote_code=False)
    start = build_classifier(str(tiny_models["bert"]), ["neg", "pos"], pad_token_id=0, trust_remote_code=False)
    enc = dict(saved.base_model.encoder.named_parameters())
    assert all(torch.equal(p, enc[n]) for n, p in start.base_model.encoder.named_parameters())  # encoder untouched
    assert not torch.equal(saved.classifier.weight, start.classifier.weight)  # the head trained

    off = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "plain", method="frozen", epochs=4, cache_features=False))
    assert off["train"]["feature_cache_s"] is None
    gpt2 = run(tiny_config(tiny_models["gpt2"], review_csv, tmp_path / "gpt2", method="frozen", epochs=1))
    assert gpt2["train"]["feature_cache_s"] is None  # no pooler head: trains the usual way
