"""Write a finished run so that predict, the demo and the Hub need nothing but this directory.

Layout: the adapter (`adapter_model.safetensors` + config, head included) or the full model
(`model.safetensors`), the tokenizer, `nlp_transfer.json` (task, method, base model and its
fingerprint, labels), `run_config.yaml`, `metrics.json` and a model card `README.md`.
Files are written to a temporary directory and moved in one by one, `nlp_transfer.json` last:
a directory without it is not a finished run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator

from nlp_transfer.errors import CheckpointError

META_FILE = "nlp_transfer.json"
FORMAT_VERSION = 1
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")


def require_safetensors(run_dir: Path) -> None:
    """Refuse a run without safetensors weights: PEFT and transformers would fall back to pickle."""
    if any((run_dir / f).is_file() for f in WEIGHT_FILES):
        return
    pickles = sorted(p.name for p in run_dir.glob("*.bin")) + sorted(p.name for p in run_dir.glob("*.pt"))
    found = f"; found {', '.join(pickles)} (pickle files are never loaded)" if pickles else ""
    raise CheckpointError(f"only safetensors weights are loaded and {run_dir} has none{found}")


def _point_adapter_at_hub(directory: Path, hub_id: str | None) -> None:
    """PEFT records the local base path; a pushed adapter should name the public base instead."""
    path = directory / "adapter_config.json"
    if hub_id and path.is_file():
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = hub_id
        _write_json(path, config)


def base_fingerprint(config: Any) -> dict[str, Any]:
    """Shape facts of the base model: an adapter only fits a base that matches all of them."""
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads", "n_embd", "n_layer", "d_model")
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


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


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
    tmp = output_dir / ".export-tmp"
    problem = None
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        _point_adapter_at_hub(tmp, meta.get("base_model_hub_id"))
        problem = check_complete(tmp, int(meta.get("trainable_params", 0)))
    (failed,) = from_main(accelerator, problem is not None)  # all ranks fail together, none waits
    if failed:
        raise CheckpointError(f"export to {output_dir} stopped: {problem or 'see the main process'}")
    if accelerator.is_main_process:
        tokenizer.save_pretrained(tmp)
        (tmp / "run_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _write_json(tmp / "metrics.json", metrics)
        full_meta = {
            "format_version": FORMAT_VERSION,
            **meta,
            "library_versions": library_versions(),
            "hardware": hardware(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _write_json(tmp / META_FILE, full_meta)
        for path in sorted(tmp.iterdir(), key=lambda p: p.name == META_FILE):
            target = output_dir / path.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(path, target)
        tmp.rmdir()
        try:
            from nlp_transfer.card import write_card

            write_card(output_dir)
        except ImportError:  # pragma: no cover - card module is optional during development
            pass
    accelerator.wait_for_everyone()


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a finished nlp-transfer run (no {META_FILE})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is corrupt: {e}") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{directory} was written by a newer nlp-transfer (format {meta['format_version']}); upgrade")
    return meta
