"""Build the Accelerator from the run config and the launcher's environment.

One process, DDP, DeepSpeed ZeRO and FSDP2 all come through here. On CPU some of them need a
repair before Accelerate's process-wide state exists, and every run is checked against what its
launch asked for (training/distributed.py says why): a degraded run stops instead of training.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from nlp_transfer.rundir import LOGS_DIR
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.training import distributed, precision

logger = logging.getLogger(__name__)


class RunAccelerator(Accelerator):
    """An Accelerator whose `end_training` waits for every rank before tearing the group down.

    Accelerate destroys the process group without a barrier; a rank that leaves while another is
    still in a collective is what makes ranks abort at exit.
    """

    def end_training(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        distributed.shutdown(self)


def make_accelerator(cfg: TrainConfig, output_dir: Path) -> Accelerator:
    # Decide CPU-ness without touching PartialState: creating it here, without the kwargs that
    # `before_accelerator` returns, is exactly what made DeepSpeed on CPU believe in one process.
    on_cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
        "1",
        "true",
        "yes",
    )
    mixed_precision = precision.resolve(cfg.precision, cpu=on_cpu)
    _forget_other_precision(mixed_precision)
    handlers = distributed.before_accelerator(cfg.max_grad_norm)
    accelerator = RunAccelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=None if cfg.report_to == "none" else cfg.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / LOGS_DIR)
        ),
        kwargs_handlers=handlers,
    )
    distributed.check_launch(accelerator, cfg.grad_accum)
    if accelerator.is_main_process and accelerator.num_processes > 1:
        logger.info("distributed: %s", distributed.describe(accelerator))
    return accelerator


def _forget_other_precision(mixed_precision: str) -> None:
    """Several runs in one process (a notebook, a study, the tests): Accelerate keeps its state
    process-wide and refuses a second run that asks for another precision. A lone process may start
    afresh; a distributed launch runs one training per process, so its state is never reset here."""
    from accelerate.state import AcceleratorState

    single = int(os.environ.get("WORLD_SIZE", "1") or 1) == 1
    if single and AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=True)
