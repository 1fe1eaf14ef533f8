"""`nlp-transfer jobs create|list|get|cancel|resume|events|logs`: the shell side of the jobs API.

    nlp-transfer jobs create --config recipes/configs/sentiment_minilm_lora.yaml --set max_steps=50
    nlp-transfer jobs create --config my.yaml --training-file reviews.csv --push-to-hub me/my-model
    nlp-transfer jobs list | get ID | cancel ID | resume ID | logs ID
    nlp-transfer jobs events ID [--follow]

Every command is one request (two for an upload) through `nlp_transfer.service.client`; a refused
request prints the API's one-line message and exits non-zero. `--server` (or $NLP_TRANSFER_SERVER)
picks the server, the API key comes from $NLP_TRANSFER_API_KEY, as for `nlp-transfer serve`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from nlp_transfer.errors import ConfigError
from nlp_transfer.service.client import DEFAULT_SERVER, SERVER_ENV, Client
from nlp_transfer.service.jobs.validation import MANAGED_KEYS

UPLOAD_FORM = (
    "task",
    "text_column",
    "label_column",
    "summary_column",
)  # what POST /v1/files validates against


def apply_set(config: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """`--set key=value` overrides; values are YAML (`3`, `true`, `[q, v]`), dotted keys nest (`method_args.r=4`)."""
    out = dict(config)
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set max_steps=50")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        target = out
        *parents, last = key.strip().split(".")
        for part in parents:
            child = target.get(part)
            target[part] = dict(child) if isinstance(child, dict) else {}
            target = target[part]
        target[last] = value
    return out


def read_config(path: str) -> dict[str, Any]:
    """The YAML file as a mapping (validation is the server's: same messages as `nlp-transfer train`)."""
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of TrainConfig keys, not a {type(data).__name__}")
    return data


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _drop_from_file(config: dict[str, Any], keys: tuple[str, ...], path: str, why: str) -> None:
    """Keys a recipe file sets that the service owns: dropped with a note (an explicit --set is kept)."""
    for key in keys:
        if key in config:
            del config[key]
            print(f"note: ignoring {key!r} from {path}: {why}", file=sys.stderr)


def cmd_create(client: Client, args: argparse.Namespace) -> int:
    if args.training_file and not Path(args.training_file).expanduser().is_file():
        raise ConfigError(f"--training-file {args.training_file} does not exist")
    config = read_config(args.config) if args.config else {}
    # recipe configs are meant to be reused as they are; these keys belong to the service for a job
    _drop_from_file(config, MANAGED_KEYS, args.config, "each job gets its own directory under the state dir")
    if args.training_file:
        _drop_from_file(config, ("dataset",), args.config, "--training-file is the dataset")
    config = apply_set(config, args.set)
    if args.push_to_hub:  # the recipe's own push runs at the end of the job, as with `nlp-transfer train`
        config["push_to_hub"] = True
        config["hub_repo_id"] = args.push_to_hub
    training_file = None
    if args.training_file:
        form = {k: str(config[k]) for k in UPLOAD_FORM if config.get(k) is not None}  # checked for this task
        training_file = client.upload_file(args.training_file, **form)["id"]
        print(f"uploaded {args.training_file} as {training_file}", file=sys.stderr)
    job = client.create_job(
        config,
        training_file=training_file,
        accelerate_config=args.accelerate_config,
        idempotency_key=args.idempotency_key,
    )
    _print(job)
    return 0


def _progress(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    step, total = (
        progress.get("step", job.get("progress_step")),
        progress.get("total", job.get("progress_total")),
    )
    return f"{step}/{total}" if total else str(step if step is not None else "")


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    page = client.list_jobs(limit=args.limit, after=args.after)
    if args.json:
        _print(page)
        return 0
    jobs = page.get("data", []) if isinstance(page, dict) else page
    print(f"{'id':<31} {'status':<17} {'progress':<12} {'created (UTC)':<20} model")
    for job in jobs:
        created = str(job.get("created_at", ""))[:19].replace("T", " ")
        print(
            f"{job.get('id', ''):<31} {job.get('status', ''):<17} {_progress(job):<12} "
            f"{created:<20} {job.get('model_id') or ''}"
        )
    if isinstance(page, dict) and page.get("has_more") and jobs:
        print(f"(more: --after {jobs[-1].get('id')})")
    return 0


def cmd_events(client: Client, args: argparse.Namespace) -> int:
    if not args.follow:
        events = client.events(args.job_id)
        for event in events.get("data", []) if isinstance(events, dict) else events:
            print(json.dumps(event, default=str))
        return 0
    for event in client.stream_events(args.job_id):
        print(json.dumps(event, default=str), flush=True)
    job = client.get_job(args.job_id)
    print(f"job {args.job_id}: {job.get('status')}", file=sys.stderr)
    return 0 if job.get("status") != "failed" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nlp-transfer jobs", description="Fine-tuning jobs on a running `nlp-transfer serve`."
    )
    parser.add_argument(
        "--server", default=None, help=f"service URL (default ${SERVER_ENV} or {DEFAULT_SERVER})"
    )
    either_side = argparse.ArgumentParser(add_help=False)  # `jobs list --server URL` works too
    either_side.add_argument("--server", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", parents=[either_side], help="submit a job from a recipe config")
    create.add_argument("--config", help="YAML file of TrainConfig keys (e.g. recipes/configs/*.yaml)")
    create.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a key (repeatable)"
    )
    create.add_argument(
        "--training-file", help="a local CSV/TSV/JSONL/Parquet file: uploaded, then trained on"
    )
    create.add_argument(
        "--accelerate-config", help="name of a file in accelerate_configs/ (e.g. cpu_ddp.yaml)"
    )
    create.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="push the finished run to this Hub repo (USER/NAME)"
    )
    create.add_argument("--idempotency-key", help="resubmitting with the same key returns the first job")
    listing = sub.add_parser("list", parents=[either_side], help="jobs, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--after", help="job id to continue after (pagination)")
    listing.add_argument("--json", action="store_true", help="print the API's JSON page")
    for name, help in (("get", "one job's status, progress and metrics"), ("cancel", "stop a job"),
                       ("resume", "continue a failed, cancelled or interrupted job from its checkpoint")):  # fmt: skip
        sub.add_parser(name, parents=[either_side], help=help).add_argument("job_id")
    logs = sub.add_parser(
        "logs", parents=[either_side], help="the job's captured output (the server's default tail)"
    )
    logs.add_argument("job_id")
    logs.add_argument("--tail", type=int, help="last N lines")
    events = sub.add_parser(
        "events", parents=[either_side], help="the job's events (steps, losses, evaluations)"
    )
    events.add_argument("job_id")
    events.add_argument("--follow", "-f", action="store_true", help="stream until the job finishes (SSE)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    with Client(args.server) as client:
        if args.command == "create":
            return cmd_create(client, args)
        if args.command == "list":
            return cmd_list(client, args)
        if args.command == "events":
            return cmd_events(client, args)
        if args.command == "logs":
            sys.stdout.write(client.logs(args.job_id, tail=args.tail))
            return 0
        action = {"get": client.get_job, "cancel": client.cancel_job, "resume": client.resume_job}[
            args.command
        ]
        _print(action(args.job_id))
        return 0
