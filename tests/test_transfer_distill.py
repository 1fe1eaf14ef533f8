"""Distillation: the loss, the shrunken student, and a teacher -> student run reported end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.distill import DistillModel, distill_loss, kept_layers, shrink


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, Path("recipes") / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_distill_loss_mixes_soft_and_hard_terms() -> None:
    s, t, y = torch.randn(8, 3), torch.randn(8, 3), torch.randint(0, 3, (8,))
    assert distill_loss(s, t, y, 2.0, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item())
    assert distill_loss(t, t, y, 2.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)  # student == teacher
    soft = F.kl_div(F.log_softmax(s / 3, -1), F.softmax(t / 3, -1), reduction="batchmean").item()
    assert distill_loss(s, t, y, 3.0, 1.0).item() == pytest.approx(9 * soft, rel=1e-5)


def test_kept_layers_are_evenly_spaced() -> None:
    assert kept_layers(6, 3) == [0, 2, 5] or kept_layers(6, 3) == [0, 3, 5]
    assert kept_layers(6, 6) == list(range(6)) and kept_layers(6, 1) == [0]
    with pytest.raises(ConfigError):
        kept_layers(6, 7)


def test_shrink_keeps_pretrained_layers(tiny_models: dict) -> None:
    """A 4-layer model shrunk to 2 must be exactly layers 0 and 3 of it: same weights, and the logits of
    a 2-layer model built independently from the config and loaded with those layers' weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_models["bert"], num_hidden_layers=4, num_labels=2)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    ids = {"input_ids": torch.tensor([[2, 50, 60, 70, 3], [2, 80, 90, 3, 0]]),
           "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])}  # fmt: skip
    with torch.no_grad():
        full_logits = model(**ids).logits

    small = shrink(model, 2)
    assert len(small.bert.encoder.layer) == 2 and small.config.num_hidden_layers == 2
    kept = {
        "bert.encoder.layer.0.": "bert.encoder.layer.0.",
        "bert.encoder.layer.1.": "bert.encoder.layer.3.",
    }
    expected = {}
    for key in small.state_dict():
        source = key
        for new_prefix, old_prefix in kept.items():
            if key.startswith(new_prefix):
                source = old_prefix + key[len(new_prefix) :]
        expected[key] = original[source]
    for key, value in small.state_dict().items():
        assert torch.equal(value, expected[key]), key

    reference = AutoModelForSequenceClassification.from_config(
        AutoConfig.from_pretrained(tiny_models["bert"], num_hidden_layers=2, num_labels=2)
    ).eval()
    reference.load_state_dict(expected, strict=True)
    with torch.no_grad():
        small_logits = small(**ids).logits
        torch.testing.assert_close(small_logits, reference(**ids).logits, rtol=0, atol=0)
    assert not torch.allclose(small_logits, full_logits)  # two layers really are gone


def test_teacher_is_frozen_and_stays_in_eval_mode(tiny_models: dict) -> None:
    from transformers import AutoModelForSequenceClassification

    student = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2)
    model = DistillModel(student, teacher, 2.0, 0.5).train()
    assert not teacher.training and student.training
    batch = {
        "input_ids": torch.randint(5, 500, (4, 6)),
        "attention_mask": torch.ones(4, 6, dtype=torch.long),
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    model(**batch).loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())


def test_distill_study_end_to_end(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    recipe = _recipe("distill")
    cfg = recipe.DistillStudy(
        train={"model": str(tiny_models["bert"]), "dataset": str(review_csv), "precision": "fp32", "batch_size": 16,
               "eval_batch_size": 48, "max_length": 32, "epochs": 4, "log_every": 100},
        teacher={"method": "lora", "lr": 2e-2, "method_args": {"r": 4}},
        students={"small_kd": {"kd": {"student_layers": 1, "alpha": 0.7, "temperature": 2.0}, "train": {"method": "full", "lr": 5e-3}},
                  "lora_kd": {"kd": {"alpha": 0.5}, "train": {"method": "lora", "lr": 2e-2, "method_args": {"r": 4}}}},
        seeds=[42], latency_examples=32, output_dir=str(tmp_path / "kd"),
    )  # fmt: skip
    cfg.validate()
    text = recipe.study(cfg)
    rows = {
        r["model"]: r for r in map(json.loads, (tmp_path / "kd" / "results.jsonl").read_text().splitlines())
    }
    assert set(rows) == {"teacher", "small_kd", "lora_kd"}
    small = json.loads((tmp_path / "kd" / "small_kd_s42" / "config.json").read_text())
    assert small["num_hidden_layers"] == 1
    assert rows["small_kd"]["total_params"] < rows["lora_kd"]["total_params"]  # 1 of 2 layers kept
    assert "| teacher |" in text and "CPU latency" in text
    meta = json.loads((tmp_path / "kd" / "small_kd_s42" / "nlp_transfer.json").read_text())
    assert meta["distillation"]["student_layers"] == 1


def test_bad_alpha_fails_early() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        from nlp_transfer.transfer.distill import Distillation

        Distillation(alpha=1.5).validate()
