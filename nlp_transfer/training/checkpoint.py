"""Resumable checkpoints, written atomically and pruned to the last K.

A checkpoint is Accelerate's saved state (model, optimizer, scheduler, RNG) plus our loop state, in
`checkpoints/step-N`. It is first written to a hidden temporary directory and renamed into place,
so a run killed while saving leaves the previous checkpoint intact, never a half-written one; the
next save (and a resume) deletes such a leftover `.tmp-step-N`.

Test-only fault point: with the environment variable `NLP_TRANSFER_FAULT=checkpoint_write:<step>`,
the process hard-exits (`os._exit(FAULT_EXIT_CODE)`, no cleanup, like a kill) in the middle of
writing the checkpoint of optimizer step <step>: after Accelerate's files are in the temporary
directory, before the loop state and the rename. tests/test_process_death.py uses it to test a
kill during a save without depending on timing. Nothing sets it outside tests.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

from nlp_transfer.errors import CheckpointError
from nlp_transfer.training import distributed

logger = logging.getLogger(__name__)
STATE_FILE = "loop_state.json"
BEST_FILE = "best_trainable.safetensors"
FAULT_ENV = "NLP_TRANSFER_FAULT"  # test-only, see the module docstring
FAULT_EXIT_CODE = 86
_TMP_PREFIX = ".tmp-step-"


@dataclass
class LoopState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch
    batches_in_epoch: int = 0  # batches of the current epoch already trained on (this process)
    best_metric: float | None = None
    best_step: int = 0
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def checkpoint_dirs(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary ones are skipped)."""
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).exists()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _fault_requested(point: str, step: int) -> bool:
    """True when the test-only fault variable asks to die at `point` of step `step`."""
    return os.environ.get(FAULT_ENV, "") == f"{point}:{step}"


def discard_partial(root: Path) -> list[Path]:
    """Delete temporary directories that a save killed halfway left behind; returns what went.

    Main process only, and only while no save is running (saves are sequential within a run).
    """
    if not root.is_dir():
        return []
    partial = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_TMP_PREFIX)]
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    return partial


def save(
    accelerator: Accelerator,
    root: Path,
    state: LoopState,
    keep: int,
    best: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Every rank calls this. `best` (the best weights so far, trainable ones only) rides along."""
    final = root / f"step-{state.step}"
    tmp = root / f"{_TMP_PREFIX}{state.step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        discard_partial(root)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # collective under DeepSpeed/FSDP: every rank calls it
    accelerator.wait_for_everyone()
    if _fault_requested("checkpoint_write", state.step):
        os._exit(FAULT_EXIT_CODE)  # test-only: die with the weights written and no loop state yet
    if accelerator.is_main_process:
        if best:
            save_file(best, str(tmp / BEST_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in checkpoint_dirs(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_latest(
    accelerator: Accelerator, root: Path
) -> tuple[LoopState, dict[str, torch.Tensor] | None] | None:
    """Every rank calls this. All must see the same latest checkpoint, or loading would hang."""
    found = checkpoint_dirs(root)
    if not distributed.all_equal(accelerator, int(found[-1].name.split("-")[1]) if found else -1):
        raise CheckpointError(
            f"the processes see different checkpoints in {root}; on several machines output_dir must be "
            "on a filesystem they all share"
        )
    if accelerator.is_main_process:
        for p in discard_partial(root):
            logger.info("resume: deleted %s, left by a save that did not finish", p.name)
    if not found:
        return None
    latest = found[-1]
    try:
        state = LoopState(**json.loads((latest / STATE_FILE).read_text()))
        accelerator.load_state(str(latest))
        best = load_file(str(latest / BEST_FILE)) if (latest / BEST_FILE).exists() else None
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {latest} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            f"delete it to resume from the one before, or start over without --resume"
        ) from e
    return state, best
