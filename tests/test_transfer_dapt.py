"""Domain-adaptive pretraining: MLM for encoders (fresh head reported), CLM for decoders, then fine-tune."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from nlp_transfer import pipeline
from nlp_transfer.transfer.common import train_config
from nlp_transfer.transfer.dapt import LanguageModelingTask, Pretraining, export_base, group_texts


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, Path("recipes") / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_plain_text_file_is_one_document_per_line(tmp_path: Path) -> None:
    from nlp_transfer.transfer.dapt import load_text

    path = tmp_path / "corpus.txt"
    path.write_text("first  document\n\nsecond one\n")
    assert load_text(str(path), 0)["train"]["text"] == ["first document", "second one"]


def test_group_texts_makes_full_blocks() -> None:
    assert group_texts([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4) == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert group_texts([[1, 2]], 4) == [[1, 2]]  # a corpus shorter than one block is kept


def test_mlm_on_lee_news_then_finetune_from_the_adapted_encoder(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    """The tiny BERT is saved without an MLM head, like all-MiniLM-L6-v2: the run must say so."""
    recipe = _recipe("dapt")
    common = {"model": str(tiny_models["bert"]), "precision": "fp32", "batch_size": 16, "eval_batch_size": 64, "max_length": 32, "log_every": 100}
    cfg = recipe.DaptStudy(
        pretrain={**common, "method": "full", "lr": 5e-3, "max_steps": 8, "eval_every": 4},
        text={"text_dataset": "lee_news"},
        finetune={**common, "dataset": str(review_csv), "method": "full", "lr": 5e-3, "epochs": 2},
        seeds=[1], output_dir=str(tmp_path / "dapt"),
    )  # fmt: skip
    cfg.validate()
    text = recipe.study(cfg)
    rows = [json.loads(x) for x in (tmp_path / "dapt" / "results.jsonl").read_text().splitlines()]
    pre = rows[0]
    assert pre["objective"] == "mlm" and any(k.startswith("cls.predictions") for k in pre["fresh_head"])
    assert pre["validation_loss"] < pre["validation_loss_first_eval"] + 1e-6
    meta = json.loads((tmp_path / "dapt" / "pretrain" / "nlp_transfer.json").read_text())
    assert meta["task"] == "masked_lm" and meta["fresh_head"]
    # the adapted base keeps the original pooler and carries the adapted encoder weights
    from transformers import AutoModel

    adapted = AutoModel.from_pretrained(tmp_path / "dapt" / "adapted_base")
    original = AutoModel.from_pretrained(tiny_models["bert"])
    torch.testing.assert_close(adapted.pooler.dense.weight, original.pooler.dense.weight)
    assert not torch.equal(adapted.encoder.layer[0].attention.self.query.weight, original.encoder.layer[0].attention.self.query.weight)
    assert {r["stage"] for r in rows} == {"pretrain", "adapted", "original"}
    assert "ships without an MLM head" in text and "| adapted |" in text


def test_clm_with_lora_on_a_text_file(tiny_models: dict, tmp_path: Path) -> None:
    texts = tmp_path / "notes.csv"
    pd.DataFrame({"body": [f"the film was {w} and the cast was {w}" for w in ["great", "dull", "moving", "bland"] * 30]}).to_csv(texts, index=False)
    cfg = train_config({"model": str(tiny_models["gpt2"]), "precision": "fp32", "batch_size": 8, "max_length": 16, "lr": 1e-2,
                        "max_steps": 6, "eval_every": 3, "method": "lora", "method_args": {"r": 4}, "metric_for_best": "loss",
                        "report_to": "none", "output_dir": str(tmp_path / "clm")}, task="language_modeling")  # fmt: skip
    task = LanguageModelingTask(cfg, Pretraining(text_dataset=str(texts), text_column="body"))
    metrics = pipeline.run(cfg, task=task)
    assert task.objective == "clm" and metrics["validation"]["perplexity"] > 1
    base = export_base(tmp_path / "clm", tmp_path / "clm_base")  # adapter merged into a plain decoder
    from transformers import AutoModelForCausalLM

    assert not any("lora" in n for n, _ in AutoModelForCausalLM.from_pretrained(base).named_parameters())
