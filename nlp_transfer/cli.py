"""`nlp-transfer`: train, eval and predict from the shell, with the recipes' options.

    nlp-transfer train --config recipes/configs/sentiment_minilm_lora.yaml [--key value ...]
    nlp-transfer eval RUN_DIR [--dataset NAME --split test]
    nlp-transfer predict RUN_DIR --text "a gorgeous, moving film" [--text ...] [--file reviews.txt]
    nlp-transfer push RUN_DIR --repo-id USER/NAME [--private] [--revision B] [--commit-message M]
    nlp-transfer merge RUN_DIR OUT_DIR [--base MODEL] [--overwrite]
    nlp-transfer methods
    nlp-transfer launch --config_file accelerate_configs/cpu_ddp.yaml recipes/classify.py --config ...
    nlp-transfer jobs create|list|get|cancel|resume|events|logs ...   (client of `nlp-transfer serve`)
    nlp-transfer serve [--host 127.0.0.1] [--port 8000] [--state-dir DIR] [--database-url URL] [--adapters DIR ...]

Errors from bad input print as one line (exit code 2) instead of a traceback;
NLP_TRANSFER_DEBUG=1 prints the full traceback (with its causes) before that line.
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
    for text, result in zip(texts, predictor.predict(texts), strict=True):
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


def cmd_push(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nlp-transfer push", description="Upload a finished run to the Hugging Face Hub.")
    parser.add_argument("run_dir")
    parser.add_argument("--repo-id", "--repo_id", required=True, dest="repo_id", help="USER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to push to (created if missing)")
    parser.add_argument("--commit-message", "--commit_message", dest="commit_message")
    parser.add_argument("--force", action="store_true", help="replace a repo that holds a different model")
    args = parser.parse_args(argv)
    from nlp_transfer.hub import push

    url = push(
        args.run_dir, args.repo_id, private=args.private, revision=args.revision, commit_message=args.commit_message,
        force=args.force,
    )  # fmt: skip
    print(url)
    return 0


def cmd_merge(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nlp-transfer merge", description="Merge a LoRA-style adapter into its base and save a standalone run.")
    parser.add_argument("run_dir", help="adapter run directory or Hub repo id")
    parser.add_argument("out_dir", help="where the merged run goes")
    parser.add_argument("--base", help="override the base model (a local copy of it)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir")
    args = parser.parse_args(argv)
    from nlp_transfer.merge import merge_run

    print(merge_run(args.run_dir, args.out_dir, base=args.base, overwrite=args.overwrite))
    return 0


def cmd_serve(argv: list[str]) -> int:
    """The fine-tuning service: see nlp_transfer/service/serve.py and docs/service.md."""
    from nlp_transfer.service.serve import main as serve_main

    return serve_main(argv)


def cmd_launch(argv: list[str]) -> int:
    """Multi-process training (DDP, DeepSpeed, FSDP): see nlp_transfer/launch.py and docs/scaling.md."""
    from nlp_transfer.launch import main as launch_main

    return launch_main(argv)


def cmd_methods(argv: list[str]) -> int:
    from nlp_transfer.methods import available

    for name, help in available().items():
        print(f"{name:10s} {help}")
    print("peft:<type> any other PEFT method by its PeftType name, e.g. peft:vera")
    return 0


def cmd_jobs(argv: list[str]) -> int:
    """Fine-tuning jobs on a running service: see nlp_transfer/service/jobs_cli.py and docs/service.md."""
    from nlp_transfer.service.jobs_cli import main as jobs_main

    return jobs_main(argv)


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "eval": cmd_eval, "push": cmd_push, "merge": cmd_merge, "methods": cmd_methods, "launch": cmd_launch, "jobs": cmd_jobs, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    log.setup()
    try:
        return COMMANDS[argv[0]](argv[1:])
    except NLPTransferError as e:
        return log.report_error(e)


if __name__ == "__main__":
    sys.exit(main())
