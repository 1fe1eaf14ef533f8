"""Each transfer method trains exactly the weights it promises."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nlp_transfer.errors import ConfigError
from nlp_transfer.methods import get_method
from nlp_transfer.tasks.classification import build_classifier

METHODS = ["full", "top_k", "frozen", "lora", "dora", "ia3", "loha", "lokr"]


def _model(path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_classifier(str(path), ["neg", "pos"], pad_token_id=1, trust_remote_code=False)


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
@pytest.mark.parametrize("name", METHODS)
def test_method_trains_head_and_what_it_promises(tiny_models: dict, arch: str, name: str) -> None:
    model = _model(tiny_models[arch])
    total = sum(p.numel() for p in model.parameters())
    args = {"k": 1} if name == "top_k" else {}
    if arch == "gpt2" and name in ("loha", "lokr"):
        with pytest.raises(ConfigError, match="cannot adapt"):  # PEFT supports no Conv1D there
            get_method(name).prepare(model, args, task="classification", lr=1e-3, weight_decay=0.01)
        return
    prepared = get_method(name).prepare(model, args, task="classification", lr=1e-3, weight_decay=0.01)
    names = _trainable(prepared.model)
    n_trainable = sum(p.numel() for p in prepared.model.parameters() if p.requires_grad)
    head = "classifier" if arch == "bert" else "score"
    assert any(head in n for n in names), f"{name} must train the {head} head"
    grouped = {id(p) for g in prepared.param_groups for p in g["params"]}
    assert grouped == {id(p) for p in prepared.model.parameters() if p.requires_grad}
    if name == "full":
        assert n_trainable == total
    elif name == "frozen":
        assert not any(".layer." in n or ".h." in n or ".layers." in n for n in names)
    elif name == "top_k":
        assert any(("layer.1." in n or "h.1." in n or "layers.1." in n) for n in names)
        assert not any(("layer.0." in n or "h.0." in n or "layers.0." in n) for n in names)
    else:
        assert prepared.is_peft and 0 < n_trainable < total / 2


def test_top_k_layer_lr_decay(tiny_models: dict) -> None:
    prepared = get_method("top_k").prepare(
        _model(tiny_models["bert"]),
        {"k": 2, "layer_lr_decay": 0.5},
        task="classification",
        lr=1e-3,
        weight_decay=0.0,
    )
    assert sorted({g["lr"] for g in prepared.param_groups}) == [5e-4, 1e-3]


def test_bad_method_options_name_the_problem(tiny_models: dict) -> None:
    with pytest.raises(ConfigError, match="did you mean 'lora'"):
        get_method("lroa")
    with pytest.raises(ConfigError, match="did you mean 'k'"):
        get_method("top_k").prepare(
            _model(tiny_models["bert"]), {"kk": 1}, task="classification", lr=1e-3, weight_decay=0
        )
    with pytest.raises(ConfigError, match="between 0 and the model's 2 layers"):
        get_method("top_k").prepare(
            _model(tiny_models["bert"]), {"k": 5}, task="classification", lr=1e-3, weight_decay=0
        )
    with pytest.raises(ConfigError, match="did you mean 'lora_alpha'"):
        get_method("lora").prepare(
            _model(tiny_models["bert"]), {"lora_alfa": 8}, task="classification", lr=1e-3, weight_decay=0
        )


def test_missing_target_modules_lists_real_ones(tiny_models: dict) -> None:
    with pytest.raises(ConfigError) as err:
        get_method("lora").prepare(
            _model(tiny_models["gpt2"]),
            {"target_modules": ["q_proj"]},
            task="classification",
            lr=1e-3,
            weight_decay=0,
        )
    assert "q_proj" in str(err.value) and "c_attn" in str(err.value)


def test_seed_fixes_lora_initialisation(tiny_models: dict) -> None:
    def lora_weights(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        model = build_classifier(str(tiny_models["bert"]), ["a", "b"], 0, False)
        prepared = get_method("lora").prepare(model, {}, task="classification", lr=1e-3, weight_decay=0)
        return torch.cat([p.flatten() for n, p in prepared.model.named_parameters() if p.requires_grad])

    assert torch.equal(lora_weights(1), lora_weights(1))
    assert not torch.equal(lora_weights(1), lora_weights(2))


def test_generic_peft_type(tiny_models: dict) -> None:
    prepared = get_method("peft:ln_tuning").prepare(
        _model(tiny_models["bert"]),
        {"target_modules": ["LayerNorm"]},
        task="classification",
        lr=1e-3,
        weight_decay=0,
    )
    assert prepared.is_peft
    with pytest.raises(ConfigError, match="PEFT has no method"):
        get_method("peft:lorra")
