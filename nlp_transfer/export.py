"""Write a finished run so that predict, the demo and the Hub need nothing but this directory.

Layout (file names live in `nlp_transfer.rundir`): the adapter (safetensors + config, head included)
or the full model, the tokenizer, the run's meta file (task, method, base model and its fingerprint,
labels), the resolved config, the metrics and a model card. Everything is written to a staging
directory and moved in one by one, the meta file last: a directory without it is not a finished run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from nlp_transfer.errors import CheckpointError
from nlp_transfer.rundir import ADAPTER_CONFIG, RunDir, atomic_write_text

logger = logging.getLogger("nlp_transfer")


def _point_adapter_at_hub(directory: Path, hub_id: str | None) -> None:
    """PEFT records the local base path; a pushed adapter should name the public base instead."""
    path = directory / ADAPTER_CONFIG
    if hub_id and path.is_file():
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = hub_id
        atomic_write_text(path, json.dumps(config, indent=2) + "\n")


def base_fingerprint(config: Any) -> dict[str, Any]:
    """Shape facts of the base model: an adapter only fits a base that matches all of them."""
    keys = (
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "vocab_size",
        "num_attention_heads",
        "n_embd",
        "n_layer",
        "d_model",
    )
    return {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}


def _numel(p: torch.Tensor) -> int:
    return getattr(p, "ds_numel", None) or p.numel()  # ZeRO-3 placeholders are empty; ds_numel is the truth


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(_numel(p) for p in model.parameters())
    trainable = sum(_numel(p) for p in model.parameters() if p.requires_grad)
    return trainable, total


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "datasets"):
        try:
            out[name] = version(name)
        except Exception:
            pass
    return out


def saved_weight_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the directory's safetensors files (headers only)."""
    from safetensors import safe_open

    shapes = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    return shapes


def check_complete(directory: Path, trainable: int) -> str | None:
    """Why the written weights cannot be the trained model, or None.

    Under ZeRO-3 or FSDP a rank's parameters are empty placeholders or shards: saving them instead
    of the gathered state dict writes an adapter or head that loads and predicts, just wrongly.
    """
    shapes = saved_weight_shapes(directory)
    empty = [k for k, s in shapes.items() if math.prod(s) == 0]
    if empty:
        return f"empty tensors in the saved weights ({', '.join(empty[:3])}): sharded parameters were saved ungathered"
    total = sum(math.prod(s) for s in shapes.values())
    if total < trainable:
        return f"the saved weights hold {total:,} values but {trainable:,} parameters were trained: weights were lost at save"
    return None


def export(
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: Any,
    output_dir: Path,
    meta: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """Every rank must call this (gathering a sharded state dict is a collective); one rank writes."""
    from nlp_transfer.training.distributed import from_main

    state_dict = accelerator.get_state_dict(model)  # full on the main process under ZeRO-3 / FSDP
    unwrapped = accelerator.unwrap_model(model)
    run = RunDir(output_dir)
    staged, problem = None, None
    if accelerator.is_main_process:
        staged = run.staging()
        unwrapped.save_pretrained(staged.path, state_dict=state_dict, safe_serialization=True)
        _point_adapter_at_hub(staged.path, meta.get("base_model_hub_id"))
        problem = check_complete(staged.path, int(meta.get("trainable_params", 0)))
    (failed,) = from_main(accelerator, problem is not None)  # all ranks fail together, none waits
    if failed:
        raise CheckpointError(f"export to {output_dir} stopped: {problem or 'see the main process'}")
    if staged is not None:
        tokenizer.save_pretrained(staged.path)
        staged.write_config(config)
        staged.write_metrics(metrics)
        staged.write_meta(
            {
                **meta,
                "library_versions": library_versions(),
                "hardware": hardware(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        _write_card(staged)
        run.publish(staged)
    accelerator.wait_for_everyone()


def _write_card(staged: RunDir) -> None:
    """The card is rendered from the staged files, so it is in place before the run counts as finished."""
    from nlp_transfer.card import write_card

    try:
        write_card(staged.path)
    except Exception as e:  # a card bug must not cost the trained weights; `nlp-transfer push` renders one
        logger.warning("the model card could not be written: %s", e, exc_info=True)
