"""Fold an adapter into its base model and save a standalone run: `nlp-transfer merge RUN_DIR OUT_DIR`.

Why: an adapter run needs its base model and PEFT at load time, and every adapted layer does an extra
low-rank product per call. The merged directory is a plain transformers checkpoint (loadable without
PEFT, by any tool) whose outputs match the adapter run's within float rounding, and it is still a
complete nlp-transfer run: `load_predictor`, `nlp-transfer predict/eval` and the demo open it as they
open the original. Methods with weights in the base's shape merge (LoRA, DoRA, IA3, LoHa, LoKr);
prompt- or prefix-style adapters cannot, and say so.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch

from nlp_transfer.errors import ConfigError
from nlp_transfer.predict import load_model, model_class, resolve_run_dir
from nlp_transfer.rundir import CONFIG_FILE, METRICS_FILE, SAMPLES_FILE, RunDir

logger = logging.getLogger("nlp_transfer")
COPIED = (CONFIG_FILE, METRICS_FILE, SAMPLES_FILE)  # the run's record travels with the weights


def merge_run(run: str | Path, out_dir: str | Path, base: str | None = None, overwrite: bool = False) -> Path:
    """Write the merged run to `out_dir` (atomically: a temporary directory renamed at the end)."""
    run_dir = resolve_run_dir(str(run))
    meta = RunDir(run_dir).meta()
    if not meta.get("is_peft"):
        raise ConfigError(f"{run_dir} holds full weights ({meta['method']}); only adapter runs can be merged")
    out = Path(out_dir)
    if out.resolve() == run_dir.resolve():
        raise ConfigError("OUT_DIR must differ from RUN_DIR: the adapter run stays as it is")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty; pick another directory or pass --overwrite")

    cls, kwargs = model_class(meta)
    model = load_model(run_dir, meta, cls, base, dtype=torch.float32, **kwargs)
    try:
        merged = model.merge_and_unload()
    except (AttributeError, ValueError, NotImplementedError) as e:
        raise ConfigError(
            f"the {meta['method']} adapter in {run_dir} cannot be merged: {str(e).splitlines()[0]}"
        ) from e
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if getattr(merged.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        # decoder classifiers pool at the last non-pad token, so the standalone config needs the pad id
        merged.config.pad_token_id = tokenizer.pad_token_id

    tmp = RunDir(out.parent / f".{out.name}.merge-tmp")
    shutil.rmtree(tmp.path, ignore_errors=True)
    tmp.path.mkdir(parents=True)
    merged.save_pretrained(tmp.path, safe_serialization=True)
    tokenizer.save_pretrained(tmp.path)
    for name in COPIED:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, tmp.path / name)
    merged_meta = {
        **meta,
        "is_peft": False,
        "merged_from": str(run_dir),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tmp.write_meta(merged_meta)
    try:
        from nlp_transfer.card import write_card

        write_card(tmp.path)
    except Exception as e:  # the card is a convenience; the merged weights are what was asked for
        logger.warning("merged model saved, but its model card could not be written: %s", e)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp.path, out)
    logger.info("merged %s into %s -> %s", meta["method"], meta["base_model"], out)
    return out
