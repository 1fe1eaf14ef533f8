"""Write a finished run so that predict, the demo and the Hub need nothing but this directory.

Layout: the adapter (`adapter_model.safetensors` + config, head included) or the full model
(`model.safetensors`), the tokenizer, `nlp_transfer.json` (task, method, base model and its
fingerprint, labels), `run_config.yaml`, `metrics.json` and a model card `README.md`.
Files are written to a temporary directory and moved in one by one, `nlp_transfer.json` last:
a directory without it is not a finished run.
"""

from __future__ import annotations

import json
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

META_FILE = "nlp_transfer.json"
FORMAT_VERSION = 1


def base_fingerprint(config: Any) -> dict[str, Any]:
    """Shape facts of the base model: an adapter only fits a base that matches all of them."""
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads", "n_embd", "n_layer", "d_model")
    return {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
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
    state_dict = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    tmp = output_dir / ".export-tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
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
    from nlp_transfer.errors import CheckpointError

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
