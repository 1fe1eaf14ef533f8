"""bf16 compute over fp32 master weights: gradients, updates, saves and resume all go through the masters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import kill_at, tiny_config
from nlp_transfer.pipeline import run
from nlp_transfer.tasks.classification import build_classifier
from nlp_transfer.training.bf16_weights import Bf16ComputeModel


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """Accelerate fixes mixed precision once per process; these tests switch it, so reset around each."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _model(tiny_models: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_classifier(str(tiny_models["bert"]), ["neg", "pos"], pad_token_id=0, trust_remote_code=False)


def test_gradients_reach_the_fp32_masters_and_updates_reach_the_bf16_copy(tiny_models: dict) -> None:
    master = _model(tiny_models)
    master.bert.embeddings.requires_grad_(False)  # partial fine-tuning: frozen weights get no gradient
    model = Bf16ComputeModel(master).train()
    assert model._compute.training and master.training
    model.eval()  # no dropout: the two backward passes below see the same graph
    assert not model._compute.training
    assert list(model.state_dict()) == [f"master.{k}" for k in master.state_dict()]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    opt = torch.optim.AdamW([p for p in master.parameters() if p.requires_grad], lr=1e-2, fused=True)
    model.watch(opt)
    batch = {"input_ids": torch.randint(5, 100, (4, 10)), "labels": torch.tensor([0, 1, 0, 1])}

    model(**batch).loss.backward()
    once = {n: p.grad.clone() for n, p in master.named_parameters() if p.requires_grad}
    model(**batch).loss.backward()  # accumulation: the second gradient adds to the first, in fp32
    for n, p in master.named_parameters():
        if p.requires_grad:
            assert p.grad.dtype == torch.float32
        else:
            assert p.grad is None, n
    assert all(p.grad is None for p in model._compute.parameters())  # freed as soon as copied
    classifier = master.classifier.weight
    torch.testing.assert_close(classifier.grad, 2 * once["classifier.weight"], rtol=0.05, atol=1e-6)

    before = classifier.detach().clone()
    opt.step()
    assert not torch.equal(before, classifier)
    with torch.no_grad():
        model(input_ids=batch["input_ids"])  # a forward refreshes the copy from the stepped masters
    torch.testing.assert_close(model._compute.classifier.weight, classifier.detach().to(torch.bfloat16), atol=0, rtol=0)
    assert model.config is master.config  # attributes the wrapper lacks come from the master


def test_a_bf16_run_resumes_exactly_and_exports_fp32_weights(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    common = dict(method="full", precision="bf16", lr=2e-3, max_steps=18, eval_every=6, keep_checkpoints=5)
    straight = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "a", **common))

    with pytest.raises(KeyboardInterrupt):
        run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "b", **common), on_step=kill_at(9))
    resumed = run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "b", resume=True, **common))
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in straight["history"]], abs=1e-6)
    assert resumed["test"]["accuracy"] == pytest.approx(straight["test"]["accuracy"], abs=1e-6)

    saved = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert saved and all(t.dtype == torch.float32 for t in saved.values())
    # the export is the fp32 master, not the bf16 copy (whose values would all be bf16-representable)
    assert any(not torch.equal(t, t.to(torch.bfloat16).float()) for t in saved.values())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"method": "full"}, True),
        ({"method": "full", "bf16_weights": False}, False),
        ({"method": "full", "precision": "fp32"}, False),
        ({"method": "lora"}, False),  # adapters: their frozen base is stored in bf16 instead
    ],
    ids=["full", "off", "fp32", "lora"],
)
def test_the_compute_copy_is_used_only_where_it_applies(
    overrides: dict, expected: bool, tiny_models: dict, review_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="nlp_transfer"):
        run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "run", **{"precision": "bf16", "max_steps": 2, "eval_every": 2, **overrides}))
    assert ("computes in bf16 over fp32 master weights" in caplog.text) is expected
