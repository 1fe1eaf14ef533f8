"""The shared loop on tiny models: learning, export/reload, exact resume, checkpoints, early stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import kill_at, tiny_config
from nlp_transfer.errors import CheckpointError, ConfigError
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from nlp_transfer.training.checkpoint import checkpoint_dirs

SAMPLES = [
    "the cast was great and moving",
    "a dull and tedious plot",
    "really quite charming",
    "the script was awful",
]


@pytest.fixture(scope="module")
def lora_run(
    tiny_models: dict, review_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "lora"
    cfg = tiny_config(
        tiny_models["bert"], review_csv, out, method="lora", lr=2e-2, epochs=4, method_args={"r": 4}
    )
    return out, run(cfg)


def test_full_finetuning_learns_and_writes_a_complete_run(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    metrics = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "full"))
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]
    assert metrics["test"]["examples"] == 48
    saved = json.loads((tmp_path / "full" / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "eval_latency_ms_per_example"):
        assert key in saved["test"]
    for key in ("train_time_s", "samples_per_s"):
        assert saved["train"][key] > 0
    assert saved["trainable_params"] == saved["total_params"] > 0 and saved["peak_memory_mb"] > 0
    names = {p.name for p in (tmp_path / "full").iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "nlp_transfer.json",
        "run_config.yaml",
        "metrics.json",
        "README.md",
    } <= names
    assert not any(p.suffix == ".bin" for p in (tmp_path / "full").iterdir())


def test_lora_adapter_reloads_to_identical_logits_head_included(lora_run: tuple[Path, dict]) -> None:
    out, metrics = lora_run
    assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert any("classifier" in k for k in f.keys()), "the head must be saved with the adapter"
    p1, p2 = load_predictor(str(out)), load_predictor(str(out))
    torch.testing.assert_close(p1.logits(SAMPLES), p2.logits(SAMPLES), rtol=0, atol=0)
    # the saved adapter reproduces the test accuracy measured in memory
    import pandas as pd

    test = pd.read_csv(Path(json.loads((out / "nlp_transfer.json").read_text())["dataset"]) / "test.csv")
    preds = [r["label"] for r in p1.predict(test["text"].tolist())]
    assert abs((test["label"] == preds).mean() - metrics["test"]["accuracy"]) < 1e-9


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    common = dict(
        method="lora", lr=1e-2, max_steps=18, eval_every=6, keep_checkpoints=5, method_args={"r": 4}
    )
    straight = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "a", **common))

    with pytest.raises(KeyboardInterrupt):
        run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "b", **common), on_step=kill_at(9))
    assert [p.name for p in checkpoint_dirs(tmp_path / "b" / "checkpoints")] == ["step-6"]
    with pytest.raises(ConfigError, match="--resume"):
        run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "b", **common))
    resumed = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "b", resume=True, **common))
    for key in ("accuracy", "macro_f1", "loss"):
        assert resumed["test"][key] == pytest.approx(straight["test"][key], abs=1e-6), key
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in straight["history"]], abs=1e-6
    )


def test_checkpoints_are_atomic_and_pruned(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    ckpts = tmp_path / "c" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / ".tmp-step-99").mkdir()  # what a kill during saving leaves behind
    cfg = tiny_config(
        tiny_models["bert"],
        review_csv,
        tmp_path / "c",
        max_steps=12,
        save_every=3,
        keep_checkpoints=2,
        eval_every=6,
        resume=True,
    )
    run(cfg)
    assert [p.name for p in checkpoint_dirs(ckpts)] == ["step-9", "step-12"]


def test_early_stopping_ends_the_run(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(
        tiny_models["bert"],
        review_csv,
        tmp_path / "e",
        lr=1e-9,
        epochs=20,
        eval_every=2,
        early_stopping_patience=2,
        metric_for_best="loss",
    )
    metrics = run(cfg)
    assert metrics["train"]["stopped_early"] and metrics["train"]["steps"] < 40


def test_finished_run_is_not_overwritten(
    lora_run: tuple[Path, dict], tiny_models: dict, review_csv: Path
) -> None:
    out, _ = lora_run
    before = (out / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a finished run"):
        run(tiny_config(tiny_models["bert"], review_csv, out))
    assert (out / "adapter_model.safetensors").read_bytes() == before


def test_adapter_for_another_base_is_refused(lora_run: tuple[Path, dict], tiny_models: dict) -> None:
    out, _ = lora_run
    with pytest.raises(CheckpointError, match="another base model"):
        load_predictor(str(out), base=str(tiny_models["gpt2"]))


def test_corrupt_adapter_gives_one_clear_error(lora_run: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    out, _ = lora_run
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("checkpoints"))
    (broken / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="could not load"):
        load_predictor(str(broken))


def test_pickle_weights_are_never_loaded(lora_run: tuple[Path, dict], tmp_path: Path) -> None:
    """PEFT falls back to `adapter_model.bin` (torch.load) when safetensors is missing: we refuse."""
    import shutil

    out, _ = lora_run
    pickled = tmp_path / "pickled"
    shutil.copytree(out, pickled, ignore=shutil.ignore_patterns("checkpoints"))
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(CheckpointError, match="pickle files are never loaded"):
        load_predictor(str(pickled))


def test_saved_adapter_names_a_loadable_base(lora_run: tuple[Path, dict]) -> None:
    out, _ = lora_run
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    meta = json.loads((out / "nlp_transfer.json").read_text())
    assert adapter_config["base_model_name_or_path"] == (meta["base_model_hub_id"] or meta["base_model"])


def test_corrupt_checkpoint_is_named_on_resume(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(
        tiny_models["bert"], review_csv, tmp_path / "k", max_steps=6, save_every=3, eval_every=3
    )
    run(cfg)
    latest = checkpoint_dirs(tmp_path / "k" / "checkpoints")[-1]
    (latest / "model.safetensors").write_bytes(b"garbage")
    (tmp_path / "k" / "nlp_transfer.json").unlink()
    with pytest.raises(CheckpointError, match=f"checkpoint {latest} is unreadable"):
        run(
            tiny_config(
                tiny_models["bert"],
                review_csv,
                tmp_path / "k",
                max_steps=9,
                save_every=3,
                eval_every=3,
                resume=True,
            )
        )


def test_runs_of_different_precision_in_one_process(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    """A notebook or a study may run fp32 and then bf16 in one process; Accelerate's process-wide
    state would refuse the second run unless a lone process starts afresh."""
    from accelerate.state import AcceleratorState

    run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "fp32", max_steps=2, precision="fp32"))
    assert AcceleratorState().mixed_precision == "no"
    metrics = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "bf16", max_steps=2, precision="bf16"))
    assert metrics["train"]["mixed_precision"] == "bf16"
