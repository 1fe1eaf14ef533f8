"""nlp-transfer: transfer learning for BERT- and GPT-family models on the Hugging Face stack.

from nlp_transfer import load_predictor
p = load_predictor("runs/sentiment_minilm_lora")   # a run directory or a Hub repo id
p.predict(["a gorgeous, moving film"])
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_predictor(name: str, base: str | None = None) -> Any:
    """Load a finished run for prediction (imported lazily: torch is slow to import)."""
    from nlp_transfer.predict import load_predictor as _load

    return _load(name, base=base)


def train(**options: Any) -> dict[str, Any]:
    """Run one training job from keyword options (the same keys as the YAML configs)."""
    from nlp_transfer.config import from_dict
    from nlp_transfer.pipeline import run
    from nlp_transfer.train_config import TrainConfig

    return run(from_dict(TrainConfig, options))
