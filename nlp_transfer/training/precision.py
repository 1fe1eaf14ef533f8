"""Pick the autocast dtype. Trained weights stay fp32 either way (bf16_weights.py keeps fp32 masters)."""

from __future__ import annotations

import functools
import logging

import torch

logger = logging.getLogger(__name__)


@functools.cache
def cpu_supports_bf16() -> bool:
    """Native bf16 matmuls (AVX512-BF16 or AMX): 1.5-6x fp32 speed. Without them bf16 is emulated and slower."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def resolve(precision: str, cpu: bool) -> str:
    """`auto` -> accelerate's mixed_precision value ("no", "bf16", "fp16"), and why."""
    if precision == "fp32":
        return "no"
    if precision in ("bf16", "fp16"):
        if cpu and precision == "fp16":
            logger.warning("fp16 autocast on CPU is slow and unstable; consider precision: bf16")
        return precision
    if not cpu and torch.cuda.is_available():
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        logger.info("precision auto -> %s autocast (GPU)", choice)
        return choice
    if cpu_supports_bf16():
        logger.info("precision auto -> bf16 autocast (CPU has native bf16 instructions)")
        return "bf16"
    logger.info("precision auto -> fp32 (CPU lacks native bf16, where autocast would be slower)")
    return "no"
