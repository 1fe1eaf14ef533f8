"""`nlp-transfer`: train, eval and predict from the shell, with the recipes' options.

    nlp-transfer train --config recipes/configs/sentiment_minilm_lora.yaml [--key value ...]
    nlp-transfer eval RUN_DIR [--dataset NAME --split test]
    nlp-transfer predict RUN_DIR --text "a gorgeous, moving film" [--text ...] [--file reviews.txt]
    nlp-transfer methods

Errors from bad input print as one line (exit code 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlp_transfer import log
from nlp_transfer.errors import NLPTransferError


def cmd_train(argv: list[str]) -> int:
    from nlp_transfer.config import parse_config
    from nlp_transfer.pipeline import run
    from nlp_transfer.report import print_summary
    from nlp_transfer.train_config import TrainConfig

    cfg = parse_config(TrainConfig, argv)
    metrics = run(cfg)
    print_summary(cfg, metrics)
    return 0


def cmd_predict(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nlp-transfer predict")
    parser.add_argument("run_dir", help="run directory or Hub repo id")
    parser.add_argument("--text", action="append", default=[], help="text to classify (repeatable)")
    parser.add_argument("--file", help="a text file, one input per line")
    parser.add_argument("--base", help="override the base model (a local copy of it)")
    args = parser.parse_args(argv)
    texts = list(args.text)
    if args.file:
        texts += [line.strip() for line in Path(args.file).read_text().splitlines() if line.strip()]
    if not texts:
        parser.error("give --text or --file")
    from nlp_transfer.predict import load_predictor

    predictor = load_predictor(args.run_dir, base=args.base)
    for text, result in zip(texts, predictor.predict(texts)):
        print(json.dumps({"text": text, **result}))
    return 0


def cmd_eval(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nlp-transfer eval")
    parser.add_argument("run_dir", help="run directory or Hub repo id")
    parser.add_argument("--dataset", help="dataset to score on (default: the run's own)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--text_column", default=None)
    parser.add_argument("--label_column", default=None)
    args = parser.parse_args(argv)
    from nlp_transfer.evaluation import evaluate_run

    metrics = evaluate_run(args.run_dir, dataset=args.dataset, split=args.split, text_column=args.text_column, label_column=args.label_column)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_methods(argv: list[str]) -> int:
    from nlp_transfer.methods import available

    for name, help in available().items():
        print(f"{name:10s} {help}")
    print("peft:<type> any other PEFT method by its PeftType name, e.g. peft:vera")
    return 0


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "eval": cmd_eval, "methods": cmd_methods}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    log.setup()
    try:
        return COMMANDS[argv[0]](argv[1:])
    except NLPTransferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
