"""What is saved is what was trained: a LoRA run reloaded from disk gives the logits of the trained
model as it was in memory, for an encoder head, a decoder head and a summariser.

How the in-memory model is observed: `pipeline.run(cfg, task=...)` accepts a task object, and the
pipeline scores the test split with `task.evaluate(..., "test")` on exactly the model it exports, right
before export. A subclass of the real task records, there, the logits of the first test batch (and the
batch itself); nothing in the library changes for the test. The reloaded model then reads the same
batch. Comparing one reload with another (what tests did before) would pass even if the export lost
the head or the adapter, since both reloads would lose it alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_summarisation import write_summary_data

from conftest import tiny_config
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from nlp_transfer.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")


def recording(task_name: str, cfg: Any) -> Any:
    """The built-in task of `task_name`, recording the in-memory model's logits on the first test batch."""

    class Recording(get_task(task_name)):
        seen: dict[str, Any] = {}

        def evaluate(
            self, accelerator: Any, model: torch.nn.Module, loader: Any, split: str
        ) -> dict[str, Any]:
            if split == "test":
                batch = next(iter(loader))
                inputs = {k: v.clone() for k, v in batch.items() if k != "labels"}
                assert not model.training
                with torch.no_grad():
                    self.seen = {"inputs": inputs, "logits": model(**inputs).logits.detach().clone()}
            return super().evaluate(accelerator, model, loader, split)

    return Recording(cfg)


def assert_reload_matches_memory(out: Path, task: Any) -> None:
    assert task.seen, "the test split was never evaluated: nothing was recorded"
    predictor = load_predictor(str(out))
    model = predictor.model.eval()
    assert not any(p.requires_grad and p.grad is not None for p in model.parameters())
    with torch.no_grad():
        reloaded = model(**task.seen["inputs"]).logits
    torch.testing.assert_close(reloaded, task.seen["logits"], rtol=0, atol=0)


def assert_training_moved_the_adapter(out: Path) -> dict[str, torch.Tensor]:
    """LoRA's B starts at zero: a non-zero B proves the compared model is a trained one."""
    from safetensors.torch import load_file

    saved = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [t for k, t in saved.items() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)
    return saved


@pytest.mark.parametrize("name", ["bert", "llama"], ids=["encoder_head", "decoder_head"])
def test_lora_classifier_reloads_to_the_trained_in_memory_logits(
    tiny_models: dict, review_csv: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    cfg = tiny_config(tiny_models[name], review_csv, out, method="lora", lr=2e-2, max_steps=12, eval_every=6,
                      method_args={"r": 4})  # fmt: skip
    task = recording("classification", cfg)
    run(cfg, task=task)
    saved = assert_training_moved_the_adapter(out)
    head = [k for k in saved if "classifier" in k or "score" in k]
    assert head, f"the head must be saved with the adapter: {sorted(saved)[:8]}"
    assert_reload_matches_memory(out, task)


def test_lora_summariser_reloads_to_the_trained_in_memory_logits(tiny_models: dict, tmp_path: Path) -> None:
    out = tmp_path / "summariser"
    cfg = tiny_config(
        tiny_models["llama"], write_summary_data(tmp_path / "data"), out, task="summarisation", text_column="document",
        method="lora", method_args={"r": 4}, lr=1e-2, max_steps=6, batch_size=8, eval_batch_size=4,
        max_source_tokens=48, max_target_tokens=12, max_new_tokens=6, eval_zero_shot=False, eval_generate_samples=2,
    )  # fmt: skip
    task = recording("summarisation", cfg)
    run(cfg, task=task)
    assert_training_moved_the_adapter(out)
    assert_reload_matches_memory(out, task)
