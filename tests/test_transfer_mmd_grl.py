"""The two distances of domain adaptation behave as the method needs them to."""

from __future__ import annotations

import pytest
import torch

from nlp_transfer.transfer.grl import DomainClassifier, grad_reverse, schedule
from nlp_transfer.transfer.mmd import mmd2


def test_mmd_is_zero_for_identical_batches_and_grows_with_shift() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g)
    assert mmd2(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    values = [mmd2(x, torch.randn(64, 16, generator=g) + shift).item() for shift in (0.0, 0.5, 1.0, 2.0)]
    assert values[0] < 0.15 and all(a < b for a, b in zip(values, values[1:], strict=False)), values
    assert mmd2(x, x * 3).item() > values[0]  # a change of scale is a shift too (multi-kernel)


def test_mmd_scale_does_not_grow_with_the_number_of_kernels() -> None:
    """Kernels are averaged: MMD^2 stays in [0, 2], so lambda weighs the same for any kernel set
    (summing 5 kernels made lambda 0.5 act as 2.5, and domain adaptation collapsed to one class)."""
    x, y = torch.randn(32, 8), torch.randn(32, 8) + 10.0
    for factors in ((1.0,), (0.25, 0.5, 1.0, 2.0, 4.0)):
        assert 0.0 < mmd2(x, y, factors).item() <= 2.0


def test_mmd_gradient_pulls_target_towards_source() -> None:
    x = torch.randn(32, 8)
    y = (torch.randn(32, 8) + 1.0).requires_grad_(True)
    mmd2(x, y).backward()
    stepped = y - 0.5 * y.grad / y.grad.norm()
    assert mmd2(x, stepped).item() < mmd2(x, y.detach()).item()


def test_mmd_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one dim"):
        mmd2(torch.zeros(4, 3), torch.zeros(4, 5))


def test_gradient_reversal_flips_the_sign_into_the_encoder(tiny_models: dict) -> None:
    """Same domain loss, with and without the reversal: the encoder's gradients are exact negatives."""
    from transformers import AutoModel

    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(tiny_models["bert"]).eval()
    head = DomainClassifier(encoder.config.hidden_size, hidden=16).eval()  # no dropout: both passes see one function
    ids = torch.randint(5, 500, (6, 10))
    domain = torch.tensor([0.0, 0, 0, 1, 1, 1])

    def encoder_grads(coeff: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        encoder.zero_grad(), head.zero_grad()
        feats = encoder(input_ids=ids).last_hidden_state[:, 0]
        logits = head.net(feats).squeeze(-1) if coeff is None else head(feats, coeff)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, domain).backward()
        w = encoder.encoder.layer[0].attention.self.query.weight.grad.clone()
        return w, head.net[0].weight.grad.clone()

    plain_enc, plain_head = encoder_grads(None)
    rev_enc, rev_head = encoder_grads(1.0)
    half_enc, _ = encoder_grads(0.5)
    assert plain_enc.abs().sum() > 0
    torch.testing.assert_close(rev_enc, -plain_enc)  # the encoder is pushed to confuse the classifier
    torch.testing.assert_close(rev_head, plain_head)  # the classifier itself still learns to separate
    torch.testing.assert_close(half_enc, -0.5 * plain_enc)


def test_grad_reverse_is_identity_forward() -> None:
    x = torch.randn(3, 4)
    assert torch.equal(grad_reverse(x, 0.7), x)


def test_lambda_schedules() -> None:
    assert schedule("constant", 0.0) == 1.0
    assert schedule("linear", 0.25) == 0.25
    assert schedule("dann", 0.0) == 0.0 and schedule("dann", 1.0) > 0.99
    assert schedule("dann", 0.1) < schedule("dann", 0.2) < schedule("dann", 0.5)
    with pytest.raises(ValueError):
        schedule("cosine", 0.5)
