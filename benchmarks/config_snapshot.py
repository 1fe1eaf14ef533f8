"""Snapshot the metrics of every shipped config run at toy scale, for before/after comparisons.

    python benchmarks/config_snapshot.py OUT.json [--only NAME ...]
    python benchmarks/config_snapshot.py --compare BEFORE.json AFTER.json

Why: a refactor that should change no result (issue 15) is checked by running each shipped config
the same way before and after and comparing metrics.json field by field. The matrix, the tiny
models and the overrides are the ones tests/test_shipped_configs.py runs (tests/shipped_configs.py);
this writes {config: {metrics file: metrics minus timing, memory and latency fields}}.

The package, recipes and configs come from the tree this file sits in (checked at start), so a
worktree of an older commit snapshots that commit's code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(key, "1")

import nlp_transfer  # noqa: E402
from tests.shipped_configs import CONFIGS, build_tiny_models, config_id, deterministic, run_shipped  # noqa: E402


def snapshot(only: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="config_snapshot_") as tmp:
        models = build_tiny_models(Path(tmp) / "models")
        for path in CONFIGS:
            name = config_id(path)
            if only and name not in only and path.name not in only:
                continue
            run_dir = Path(tmp) / name.replace("/", "__").removesuffix(".yaml")
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                out[name] = deterministic(run_shipped(path, models, run_dir), Path(tmp))
            except Exception as e:  # a config that crashes is a result too; the others still run
                out[name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
                print(f"{name}: FAILED {out[name]['error']}", flush=True)
            print(
                f"{name}: {time.process_time() - cpu:.1f} s CPU, {time.perf_counter() - wall:.1f} s wall",
                flush=True,
            )
    return out


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    """Every path at which two snapshots differ (a missing key counts)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            if key not in before or key not in after:
                found.append(f"{where}/{key}: only in {'after' if key not in before else 'before'}")
            else:
                found += differences(before[key], after[key], f"{where}/{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in differences(b, a, f"{where}[{i}]")
        ]
    return [] if before == after else [f"{where}: {before!r} != {after!r}"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="JSON file to write")
    parser.add_argument(
        "--only", nargs="*", default=[], help="config names (e.g. summarize_smollm2_lora.yaml)"
    )
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two snapshots")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        diffs = differences(before, after)
        print("\n".join(diffs) if diffs else f"identical: {len(before)} configs")
        return 1 if diffs else 0
    if not args.out:
        parser.error("give the output JSON file (or --compare BEFORE AFTER)")
    package = Path(nlp_transfer.__file__).resolve()
    print(f"nlp_transfer from {package}", flush=True)
    if ROOT not in package.parents:
        print(
            f"error: nlp_transfer is imported from {package}, not from this tree ({ROOT}); set PYTHONPATH={ROOT}",
            file=sys.stderr,
        )
        return 2
    result = snapshot(args.only)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}: {len(result)} configs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
