"""The speed settings change time, not results: same logits, same optimizer updates."""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForCausalLM

from nlp_transfer.methods import get_method
from nlp_transfer.tasks.classification import load_classifier
from nlp_transfer.training import cpu_speed


def test_frozen_linears_in_bf16_give_the_autocast_logits(tiny_models: dict) -> None:
    torch.manual_seed(0)
    model = load_classifier(str(tiny_models["bert"]), ["neg", "pos"], pad_token_id=0, trust_remote_code=False)
    model = get_method("lora").prepare(model, {}, task="classification", lr=1e-3, weight_decay=0.0).model.eval()
    fast = copy.deepcopy(model)
    n = cpu_speed.store_frozen_linears(fast, torch.bfloat16)
    assert n > 0
    assert all(p.dtype == torch.float32 for p in fast.parameters() if p.requires_grad)  # adapters and head stay fp32
    ids = torch.randint(5, 100, (3, 12))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(fast(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0)


def test_weights_tied_to_embeddings_stay_fp32(tiny_models: dict) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], tie_word_embeddings=True)
    model.requires_grad_(False)
    cpu_speed.store_frozen_linears(model, torch.bfloat16)
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert any(m.weight.dtype == torch.bfloat16 for m in model.modules() if type(m) is torch.nn.Linear)


def test_fused_adamw_steps_like_the_loop_version() -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4)
    b = copy.deepcopy(a)
    groups = lambda m: [{"params": list(m.parameters()), "weight_decay": 0.01}]  # noqa: E731
    opt_a, opt_b = cpu_speed.adamw(groups(a), 1e-2, fused=True), cpu_speed.adamw(groups(b), 1e-2, fused=False)
    assert opt_a.defaults["fused"] and not opt_b.defaults.get("fused")
    x = torch.randn(16, 8)
    for _ in range(3):
        for m, opt in ((a, opt_a), (b, opt_b)):
            m(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    torch.testing.assert_close(a.weight, b.weight, atol=1e-6, rtol=1e-5)


def test_keep_freed_memory_is_safe_to_call() -> None:
    assert cpu_speed.keep_freed_memory() in (True, False)
    assert torch.ones(3000, 3000).sum() == 9_000_000  # large allocations still work
