"""Text classification by transfer learning: adapt a pretrained encoder or decoder to labelled text.

Run:
    python recipes/classify.py --config recipes/configs/sentiment_minilm_lora.yaml [--key value ...]
    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/classify.py --config ...

Features
- models: built-in `minilm-l6` (BERT-family) and `smollm2-135m` (decoder, last-token pooling), any local
  directory or Hub id of an encoder or decoder with a sequence-classification head in transformers;
- methods: full, top_k (optionally with layer-wise LR decay), frozen (feature extraction), and PEFT
  adapters (lora, dora, ia3, loha, lokr, or peft:<type>), the head always trained and saved;
- data: the built-in `rotten_tomatoes` split, or CSV/JSONL/Parquet files, `save_to_disk` directories or
  Hub datasets with configurable text/label columns; validated before anything is written;
- training: Accelerate loop with accumulation, bf16 autocast where supported (`precision: auto`),
  warmup + schedule, evaluation every N steps or per epoch, early stopping, best-weight selection,
  atomic checkpoints and exact `--resume`, TensorBoard logs;
- output: adapter or model (safetensors), tokenizer, label map, config, metrics.json, model card.

Limits
- single-label classification only (no multi-label or regression);
- inputs longer than `max_length` tokens are truncated, not chunked;
- `frozen` trains the base model's pooler/final norm with the head (see methods/top_k.py);
- multi-process launches: see accelerate_configs/ and docs/scaling.md for what is verified on CPU.
"""

import sys

from nlp_transfer import log
from nlp_transfer.config import parse_config
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.pipeline import run
from nlp_transfer.report import print_summary
from nlp_transfer.tasks.classification import ClassificationTask
from nlp_transfer.train_config import TrainConfig


def main(argv: list[str]) -> int:
    log.setup()
    try:
        cfg = parse_config(TrainConfig, argv)
        if cfg.task != ClassificationTask.name:
            raise NLPTransferError(
                f"recipes/classify.py runs task {ClassificationTask.name}; this config has task {cfg.task!r}"
            )
        print_summary(cfg, run(cfg))
    except NLPTransferError as e:
        return log.report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
