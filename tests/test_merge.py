"""`nlp-transfer merge`: a LoRA adapter folded into its base gives the unmerged run's outputs, standalone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_summarisation import summary_config, write_summary_data

from conftest import tiny_config
from nlp_transfer.cli import main
from nlp_transfer.errors import ConfigError
from nlp_transfer.merge import merge_run
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from nlp_transfer.rundir import FORMAT_VERSION, RunDir
from nlp_transfer.tasks.summary_model import load_generator

TEXTS = ["the cast was great and the film was really quite moving", "a dull and tedious plot", "superb"]


pytestmark = pytest.mark.usefixtures("one_thread")


def logits(model: torch.nn.Module, predictor, texts: list[str]) -> torch.Tensor:
    ids, mask = predictor._inputs(texts, 8)
    extra = (
        {"decoder_input_ids": ids[:, :5]} if model.config.is_encoder_decoder else {}
    )  # any fixed decoder prefix
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, **extra).logits


@pytest.mark.parametrize("name", ["gpt2", "llama", "t5"])
def test_merged_summariser_matches_the_adapter(tiny_models: dict, tmp_path: Path, name: str) -> None:
    data = write_summary_data(tmp_path / "data")
    run_dir, merged_dir = tmp_path / "run", tmp_path / "merged"
    run(summary_config(tiny_models[name], data, run_dir, lr=5e-2, eval_zero_shot=False, test_split=None))
    assert main(["merge", str(run_dir), str(merged_dir)]) == 0

    names = {p.name for p in merged_dir.iterdir()}
    assert "model.safetensors" in names and "adapter_model.safetensors" not in names
    assert {"tokenizer.json", "nlp_transfer.json", "run_config.yaml", "metrics.json"} <= names
    meta = json.loads((merged_dir / "nlp_transfer.json").read_text())
    assert meta["is_peft"] is False and meta["merged_from"] == str(run_dir)

    adapter, merged = load_predictor(str(run_dir)), load_predictor(str(merged_dir))
    assert "Peft" not in type(merged.model).__name__
    base = load_generator(str(tiny_models[name]), meta["family"]).eval()
    # the adapter really moved the model, so agreeing with it means something
    assert (logits(base, adapter, TEXTS) - logits(adapter.model, adapter, TEXTS)).abs().max() > 1e-3
    torch.testing.assert_close(
        logits(merged.model, merged, TEXTS), logits(adapter.model, adapter, TEXTS), atol=1e-5, rtol=1e-4
    )
    assert merged.summarise(TEXTS, max_new_tokens=8) == adapter.summarise(TEXTS, max_new_tokens=8)


def test_merged_decoder_classifier_matches_the_adapter_head_included(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "cls"
    run(
        tiny_config(
            tiny_models["llama"],
            review_csv,
            run_dir,
            method="lora",
            method_args={"r": 4},
            lr=2e-2,
            max_steps=6,
            test_split=None,
        )
    )
    merged_dir = merge_run(run_dir, tmp_path / "merged")
    merged, adapter = load_predictor(str(merged_dir)), load_predictor(str(run_dir))
    written = RunDir(merged_dir)  # a complete run: its card was rendered before the rename, not after
    assert written.meta()["format_version"] == FORMAT_VERSION and not written.is_peft
    assert "exported by nlp-transfer as a full model" in (written.card_text() or "")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging dir left
    torch.testing.assert_close(merged.logits(TEXTS), adapter.logits(TEXTS), atol=1e-5, rtol=1e-4)
    assert merged.model.config.pad_token_id == merged.tokenizer.pad_token_id


def test_merge_refuses_full_runs_and_existing_output(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    run(tiny_config(tiny_models["bert"], review_csv, full, max_steps=1, test_split=None))
    with pytest.raises(ConfigError, match="only adapter runs can be merged"):
        merge_run(full, tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    lora = tmp_path / "lora"
    run(tiny_config(tiny_models["bert"], review_csv, lora, method="lora", max_steps=1, test_split=None))
    with pytest.raises(ConfigError, match="not empty"):
        merge_run(lora, tmp_path / "busy")
    assert main(["merge", str(full), str(tmp_path / "out")]) == 2  # one-line error, no traceback
