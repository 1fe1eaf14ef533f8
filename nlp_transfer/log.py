"""Console logging for runs: one readable line per event, on the main process only.

Also the one place that turns a user error into the one line a command prints, so the CLI and every
recipe behave alike, including the NLP_TRANSFER_DEBUG switch that shows what the line summarises.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from typing import TextIO

DEBUG_ENV = "NLP_TRANSFER_DEBUG"
USER_ERROR_EXIT = 2


def setup(level: int = logging.INFO) -> None:
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    logging.basicConfig(
        level=level if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def report_error(error: BaseException, stream: TextIO | None = None) -> int:
    """Print `error` as one line and return the exit code for bad input.

    The one line is what a user needs; the chained causes behind it (a parse error, the Hub's reply)
    are what a bug report needs, so NLP_TRANSFER_DEBUG=1 prints the full traceback first.
    """
    stream = stream or sys.stderr
    if debug_enabled():
        traceback.print_exception(type(error), error, error.__traceback__, file=stream)
    print(f"error: {error}", file=stream)
    return USER_ERROR_EXIT
