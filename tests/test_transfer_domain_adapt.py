"""Domain adaptation end to end on a tiny model: source labels, unlabelled typo'd target, both scored."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import tiny_config
from nlp_transfer import pipeline
from nlp_transfer.errors import ConfigError
from nlp_transfer.predict import load_predictor
from nlp_transfer.transfer.derived_datasets import add_typos, typo
from nlp_transfer.transfer.domain_adapt import DomainAdaptation, DomainAdaptModel, DomainAdaptTask


@pytest.fixture(scope="module")
def typo_csv(review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("typo_reviews")
    for split in ("train", "test"):
        df = pd.read_csv(review_csv / f"{split}.csv")
        df["text"] = [add_typos(t, i, rate=0.5) for i, t in enumerate(df["text"])]
        df.to_csv(root / f"{split}.csv", index=False)
    return root


def test_typos_keep_punctuation_and_change_words() -> None:
    rng = random.Random(0)
    assert typo("a", rng) == "a" and typo("42", rng) == "42"
    out = typo("brilliant,", rng)
    assert out.endswith(",") and out != "brilliant,"
    assert add_typos("the film was brilliant", 1, rate=0.0) == "the film was brilliant"


@pytest.mark.parametrize("mode", ["mmd", "adversarial"])
def test_domain_adaptation_run(mode: str, tiny_models: dict, review_csv: Path, typo_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_models["bert"], review_csv, tmp_path / mode, epochs=2, eval_every=6)
    da = DomainAdaptation(target_dataset=str(typo_csv), mode=mode, lam=1.0, schedule="linear", domain_hidden=16)
    metrics = pipeline.run(cfg, task=DomainAdaptTask(cfg, da))
    target = metrics["test"]["target"]
    assert target["examples"] == 48 and 0 <= target["accuracy"] <= 1
    lambdas = [h["da_lambda"] for h in metrics["history"]]
    assert lambdas == sorted(lambdas) and lambdas[-1] == pytest.approx(1.0)  # linear schedule reaches lam
    assert f"da_{mode}" in metrics["history"][-1]
    # the export is a plain classifier: no wrapper prefix, no domain classifier
    predictor = load_predictor(str(tmp_path / mode))
    assert not any("domain" in n for n, _ in predictor.model.named_parameters())
    test = pd.read_csv(review_csv / "test.csv")
    preds = [p["label"] for p in predictor.predict(test["text"].tolist())]
    assert abs((test["label"] == preds).mean() - metrics["test"]["accuracy"]) < 1e-9


def test_wrapper_adds_weighted_mmd_and_never_sees_target_labels(tiny_models: dict) -> None:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2)
    seen = []

    def targets():
        while True:
            batch = {"input_ids": torch.randint(5, 500, (4, 7)), "attention_mask": torch.ones(4, 7, dtype=torch.long), "labels": torch.ones(4, dtype=torch.long)}
            yield batch

    wrapper = DomainAdaptModel(model, targets(), mode="mmd", lam=2.0, schedule_name="constant", total_calls=10)
    model.register_forward_pre_hook(lambda m, a, kw: seen.append("labels" in kw), with_kwargs=True)
    wrapper.eval()  # dropout off, so the wrapper's task loss equals the model's own
    batch = {"input_ids": torch.randint(5, 500, (4, 7)), "attention_mask": torch.ones(4, 7, dtype=torch.long), "labels": torch.tensor([0, 1, 0, 1])}
    plain = model(**batch).loss
    wrapper.training = True  # the wrapper's training path, with the inner model still deterministic
    out = wrapper(**batch)
    assert seen == [True, True, False]  # plain call, source batch with labels, target batch without
    assert out.loss.item() > plain.item() and int(wrapper.calls) == 1
    assert wrapper.stats["distance"] == pytest.approx((out.loss.item() - plain.item()) / 2.0, rel=1e-4)


def test_bad_options_fail_early() -> None:
    with pytest.raises(ConfigError, match="mode"):
        DomainAdaptation(mode="coral").validate()
    with pytest.raises(ConfigError, match="schedule"):
        DomainAdaptation(schedule="cosine").validate()
