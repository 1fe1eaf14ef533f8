"""The speed settings change time, not results: same logits, same optimizer updates."""

from __future__ import annotations

import copy
import ctypes
import platform

import pytest
import torch
from transformers import AutoModelForCausalLM

from nlp_transfer.methods import get_method
from nlp_transfer.tasks.classification import build_classifier
from nlp_transfer.training import cpu_speed


def test_frozen_linears_in_bf16_give_the_autocast_logits(tiny_models: dict) -> None:
    torch.manual_seed(0)
    model = build_classifier(
        str(tiny_models["bert"]), ["neg", "pos"], pad_token_id=0, trust_remote_code=False
    )
    model = (
        get_method("lora").prepare(model, {}, task="classification", lr=1e-3, weight_decay=0.0).model.eval()
    )
    fast = copy.deepcopy(model)
    n = cpu_speed.store_frozen_linears(fast, torch.bfloat16)
    assert n > 0
    assert all(
        p.dtype == torch.float32 for p in fast.parameters() if p.requires_grad
    )  # adapters and head stay fp32
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting"
)
def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them() -> None:
    """glibc's default hands a 64 MB block to mmap (over its 32 MB threshold ceiling) and unmaps it on
    free; after the call it must come from the heap (no new mmapped bytes) and stay there when freed."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    assert cpu_speed.keep_freed_memory() is True
    size = 64 << 20
    before = libc.mallinfo2()
    block = libc.malloc(size)
    assert block
    held = libc.mallinfo2()
    libc.free(block)
    after = libc.mallinfo2()
    assert held.hblkhd - before.hblkhd < size, "the block was mmapped: M_MMAP_MAX is not 0"
    assert held.arena >= size and after.arena == held.arena, "the heap was trimmed on free"
    assert torch.ones(3000, 3000).sum() == 9_000_000  # large allocations still work
