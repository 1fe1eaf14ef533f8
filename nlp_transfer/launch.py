"""`nlp-transfer launch`: `accelerate launch` with the CPU fallbacks repaired and checked.

    nlp-transfer launch --config_file accelerate_configs/cpu_ddp.yaml recipes/classify.py --config ...
    python -m nlp_transfer.launch --config_file accelerate_configs/deepspeed_zero3.yaml recipes/classify.py ...

Why a wrapper: with Accelerate 1.15 some configs start the wrong processes and nothing says so.
A MULTI_CPU config starts one process; this rewrites it into the form that gives real DDP on CPU
(`--multi_gpu` + ACCELERATE_USE_CPU=1). A MULTI_GPU config without GPUs is refused. Relative
DeepSpeed JSON paths are resolved against the config's own directory, so the command works from
anywhere. And every rank is told what to expect (NLP_TRANSFER_EXPECTED_PROCESSES / _MODE), so a
run that comes up with another world size or distributed type stops with a LaunchError
(training/distributed.py) instead of training quietly in a degraded mode.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from nlp_transfer.errors import ConfigError

# What the ranks must see; read by training/distributed.py. (This module stays free of torch, so
# that the launcher starts in a fraction of a second.)
EXPECTED_PROCESSES = "NLP_TRANSFER_EXPECTED_PROCESSES"
EXPECTED_MODE = "NLP_TRANSFER_EXPECTED_MODE"
MODES = ("NO", "MULTI_CPU", "MULTI_GPU", "DEEPSPEED", "FSDP")
OVERRIDES = ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port")


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan(config: dict[str, Any], config_dir: Path, gpus: int) -> tuple[dict[str, Any], dict[str, str]]:
    """(the config to hand to `accelerate launch`, extra environment) for one accelerate config."""
    cfg = dict(config)
    mode = str(cfg.get("distributed_type", "NO"))
    if mode not in MODES:
        raise ConfigError(f"distributed_type {mode} is not supported by nlp-transfer launch; use one of {', '.join(MODES)}")
    n = int(cfg.get("num_processes", 1))
    machines = int(cfg.get("num_machines", 1))
    if n < 1 or n % machines:
        raise ConfigError(f"num_processes ({n}) must be a positive multiple of num_machines ({machines}): it counts all machines")
    if mode == "NO" and n != 1:
        raise ConfigError(f"distributed_type NO runs one process, but num_processes is {n}")
    env = {EXPECTED_PROCESSES: str(n), EXPECTED_MODE: mode}
    if mode == "MULTI_CPU" or (cfg.get("use_cpu") and n > 1):
        # Accelerate's torchrun path + CPU state = gloo DDP; its own MULTI_CPU path starts 1 process.
        cfg.update(distributed_type="MULTI_GPU", use_cpu=False)
        cfg.pop("gpu_ids", None)
        env.update({"ACCELERATE_USE_CPU": "1", EXPECTED_MODE: "MULTI_CPU"})
    elif mode == "MULTI_GPU" and gpus * machines < n:
        raise ConfigError(
            f"this config asks for {n} GPU processes but this machine has {gpus} GPU(s); "
            "on CPU use accelerate_configs/cpu_ddp.yaml (or deepspeed_*/fsdp.yaml)"
        )
    elif mode == "FSDP" and int(cfg.get("fsdp_config", {}).get("fsdp_version", 1)) != 2:
        raise ConfigError("nlp-transfer supports FSDP2 only: set fsdp_config.fsdp_version: 2")
    ds = dict(cfg.get("deepspeed_config") or {})
    if mode == "DEEPSPEED" and ds.get("deepspeed_config_file"):
        path = Path(ds["deepspeed_config_file"])
        if not path.is_absolute():
            path = path if path.exists() else config_dir / path.name
        if not path.exists():
            raise ConfigError(f"DeepSpeed config {ds['deepspeed_config_file']} not found (looked in . and {config_dir})")
        ds["deepspeed_config_file"] = str(path.resolve())
        cfg["deepspeed_config"] = ds
    return cfg, env


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nlp-transfer launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config_file", required=True, help="an accelerate config, e.g. accelerate_configs/cpu_ddp.yaml")
    parser.add_argument("--dry_run", action="store_true", help="print the command and environment, start nothing")
    parser.add_argument("--num_processes", type=int, help="override: processes over all machines")
    parser.add_argument("--num_machines", type=int)
    parser.add_argument("--machine_rank", type=int, help="this machine's rank (multi-node)")
    parser.add_argument("--main_process_ip")
    parser.add_argument("--main_process_port", type=int)
    parser.add_argument("script", help="training script, e.g. recipes/classify.py")
    parser.add_argument("script_args", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def build(args: argparse.Namespace, gpus: int | None = None) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """(command, extra environment, effective config), without starting anything."""
    path = Path(args.config_file)
    if not path.is_file():
        raise ConfigError(f"accelerate config {path} not found")
    config = yaml.safe_load(path.read_text()) or {}
    for key in OVERRIDES:
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    needs_gpus = config.get("distributed_type") == "MULTI_GPU" and gpus is None
    effective, env = plan(config, path.parent, _cuda_devices() if needs_gpus else gpus or 0)
    fd, tmp = tempfile.mkstemp(prefix="nlp_transfer_accelerate_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(effective, f, sort_keys=False)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", tmp, args.script, *args.script_args]
    return cmd, env, effective


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        cmd, env, effective = build(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(" ".join(f"{k}={v}" for k, v in env.items()), " ".join(cmd))
        print(yaml.safe_dump(effective, sort_keys=False), end="")
        os.unlink(cmd[cmd.index("--config_file") + 1])
        return 0
    proc = subprocess.Popen(cmd, env={**os.environ, **env})

    def forward(signum: int, _frame: Any) -> None:  # Ctrl-C / kill reach every rank through torchrun
        proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    try:
        return proc.wait()
    finally:
        os.unlink(cmd[cmd.index("--config_file") + 1])


if __name__ == "__main__":
    sys.exit(main())
