"""Build the Accelerator from the run config and the launcher's environment."""

from __future__ import annotations

import logging
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from nlp_transfer.train_config import TrainConfig
from nlp_transfer.training import precision

logger = logging.getLogger(__name__)


def make_accelerator(cfg: TrainConfig, output_dir: Path) -> Accelerator:
    from accelerate.state import PartialState

    on_cpu = PartialState().device.type == "cpu"
    accelerator = Accelerator(
        mixed_precision=precision.resolve(cfg.precision, cpu=on_cpu),
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=None if cfg.report_to == "none" else cfg.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    return accelerator
