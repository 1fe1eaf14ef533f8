"""A real trained run pushed by the recipe option and by the CLI, then loaded back by repo id."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from nlp_transfer.cli import main as cli
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from test_hub import clean_hub_env, hub, loopback_only  # noqa: F401  (fixtures)

TEXTS = ["a charming and moving story", "dull, tedious and messy"]


def test_recipe_push_then_load_by_repo_id(
    hub,  # noqa: F811
    tiny_models: dict,
    review_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    endpoint, TOKEN = hub.endpoint, hub.token
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    out = tmp_path / "run"
    cfg = tiny_config(
        tiny_models["bert"],
        review_csv,
        out,
        method="lora",
        max_steps=6,
        push_to_hub=True,
        hub_repo_id="tester/tiny-lora",
    )
    run(cfg)
    arrived = set(hub.files("tester/tiny-lora", "main"))
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "nlp_transfer.json",
        "metrics.json",
        "README.md",
    } <= arrived
    assert not any(f.startswith("checkpoints/") for f in arrived)
    local, remote = load_predictor(str(out)), load_predictor("tester/tiny-lora")
    torch.testing.assert_close(local.logits(TEXTS), remote.logits(TEXTS), rtol=0, atol=0)

    assert cli(["push", str(out), "--repo-id", "tester/tiny-lora-cli", "--private"]) == 0
    assert "adapter_model.safetensors" in hub.files("tester/tiny-lora-cli", "main")
    captured = capsys.readouterr()
    everything = (
        captured.out
        + captured.err
        + caplog.text
        + "".join(
            p.read_text(errors="ignore")
            for p in out.rglob("*")
            if p.is_file() and p.suffix in (".md", ".json", ".yaml")
        )
    )
    assert hub.requests and TOKEN not in everything


def test_push_without_token_fails_before_training(
    tiny_models: dict, review_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlp_transfer.hub import HubError

    cfg = tiny_config(
        tiny_models["bert"], review_csv, tmp_path / "run", push_to_hub=True, hub_repo_id="tester/x"
    )
    with pytest.raises(HubError, match="no Hugging Face token"):
        run(cfg)
    assert not (tmp_path / "run").exists()


def test_published_runs_serve_as_bases_and_merge_by_repo_id(
    hub,  # noqa: F811
    tiny_models: dict,
    review_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pushed full model is the base of a further run; a pushed adapter merges by its repo id."""
    # transformers downloads through huggingface_hub, which froze HF_ENDPOINT at import; a user sets
    # it before starting Python, the test moves the frozen value
    import transformers.utils.hub
    from huggingface_hub import constants, hf_api

    from nlp_transfer.merge import merge_run

    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.endpoint)  # the module-level client, also frozen
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)  # transformers' cached client, likewise
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "full", max_steps=4,
                    push_to_hub=True, hub_repo_id="tester/tiny-full"))  # fmt: skip
    further = run(tiny_config("tester/tiny-full", review_csv, tmp_path / "further", max_steps=2))
    assert further["train"]["steps"] == 2
    assert load_predictor(str(tmp_path / "further")).meta["base_model"] == "tester/tiny-full"

    adapter = tmp_path / "lora"
    run(tiny_config(tiny_models["bert"], review_csv, adapter, method="lora", max_steps=4,
                    push_to_hub=True, hub_repo_id="tester/tiny-lora"))  # fmt: skip
    merged = merge_run("tester/tiny-lora", tmp_path / "merged")
    torch.testing.assert_close(
        load_predictor(str(merged)).logits(TEXTS),
        load_predictor(str(adapter)).logits(TEXTS),
        rtol=1e-4,
        atol=1e-5,
    )
