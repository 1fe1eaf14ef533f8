"""Multi-task learning: the sampling rules, task-pure batches, per-task metrics, one artifact per task."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import tiny_config
from nlp_transfer import pipeline
from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.multitask import MultiTaskTask, TaskBatchSampler, load_task_model, mixing_weights


def test_mixing_weights_follow_their_rule() -> None:
    assert mixing_weights([100, 300], "proportional") == pytest.approx([0.25, 0.75])
    assert mixing_weights([100, 300], "uniform") == pytest.approx([0.5, 0.5])
    t2 = mixing_weights([100, 400], "temperature", 2.0)  # sqrt: 10 vs 20
    assert t2 == pytest.approx([1 / 3, 2 / 3])
    assert mixing_weights([100, 400], "temperature", 1.0) == pytest.approx(mixing_weights([100, 400], "proportional"))
    assert mixing_weights([100, 400], "temperature", 1e6) == pytest.approx([0.5, 0.5], abs=1e-4)
    with pytest.raises(ConfigError, match="sampling"):
        mixing_weights([1, 2], "round_robin")


@pytest.mark.parametrize("rule", ["proportional", "uniform", "temperature"])
def test_sampler_batches_are_task_pure_and_follow_the_rule(rule: str) -> None:
    task_ids = [0] * 100 + [1] * 400
    weights = mixing_weights([100, 400], rule, 2.0)
    sampler = TaskBatchSampler(task_ids, batch_size=5, weights=weights, seed=0)
    counts: Counter = Counter()
    for epoch in range(40):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == 500
        for i in range(0, len(order), 5):
            tasks = {task_ids[j] for j in order[i : i + 5]}
            assert len(tasks) == 1  # one task per batch
            counts[tasks.pop()] += 1
    share = counts[0] / sum(counts.values())
    assert share == pytest.approx(weights[0], abs=0.02), (rule, share, weights)


def test_sampler_order_depends_only_on_seed_and_epoch() -> None:
    a = TaskBatchSampler([0, 1] * 20, 4, [0.5, 0.5], seed=3)
    b = TaskBatchSampler([0, 1] * 20, 4, [0.5, 0.5], seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


@pytest.fixture(scope="module")
def topic_csv(review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second task on the same kind of text: does the review mention the cast or acting?"""
    root = tmp_path_factory.mktemp("topic")
    for split in ("train", "validation", "test"):
        df = pd.read_csv(review_csv / f"{split}.csv")
        df["label"] = ["people" if ("cast" in t or "acting" in t) else "other" for t in df["text"]]
        df.head(96 if split == "train" else 48).to_csv(root / f"{split}.csv", index=False)
    return root


def test_multitask_run_and_per_task_artifact(tiny_models: dict, review_csv: Path, topic_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_models["bert"], review_csv, tmp_path / "mt", epochs=4)
    tasks = {"sentiment": {"dataset": str(review_csv)}, "topic": {"dataset": str(topic_csv)}}
    task = MultiTaskTask(cfg, tasks, sampling="temperature", temperature=2.0)
    metrics = pipeline.run(cfg, task=task)
    test = metrics["test"]["per_task"]
    assert set(test) == {"sentiment", "topic"} and test["sentiment"]["examples"] == 48
    assert test["sentiment"]["accuracy"] >= 0.8
    meta = (tmp_path / "mt" / "nlp_transfer.json").read_text()
    assert '"mixing_weights"' in meta and '"sentiment": 0.58' in meta  # sqrt(192) / (sqrt(192) + sqrt(96))
    for name, data in (("sentiment", review_csv), ("topic", topic_csv)):
        model = load_task_model(tmp_path / "mt", name)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tmp_path / "mt")
        df = pd.read_csv(data / "test.csv").head(48)
        enc = tok(df["text"].tolist(), padding=True, truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            pred = model(**enc).logits.argmax(-1)
        labels = model.labels
        acc = float((pred == torch.tensor([labels.index(v) for v in df["label"]])).float().mean())
        assert acc == pytest.approx(test[name]["accuracy"]), name
    with pytest.raises(ConfigError, match="no task"):
        load_task_model(tmp_path / "mt", "nli")


def test_multitask_refuses_peft(tmp_path: Path) -> None:
    from nlp_transfer.train_config import TrainConfig

    with pytest.raises(ConfigError, match="multi-task supports"):
        MultiTaskTask(TrainConfig(method="lora"), {"a": {}})
