"""The foundation's comparison: lora, full, top_k and frozen on the built-in Rotten Tomatoes split.

    python benchmarks/method_table.py                      # all four shipped configs, ~30 min on 2 cores
    python benchmarks/method_table.py --methods lora full --max_train_samples 2000

Runs each shipped `sentiment_minilm_*.yaml` config through the classify recipe in its own process
(same seed, split, batch and epochs; only method and LR differ, as the configs say), then prints a
markdown table from each run's `metrics.json`. Nothing here is asserted by tests: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {m: ROOT / f"recipes/configs/sentiment_minilm_{c}.yaml" for m, c in
           {"lora": "lora", "full": "full", "top_k": "top2", "frozen": "frozen"}.items()}  # fmt: skip


def run(method: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, str(ROOT / "recipes/classify.py"), "--config", str(CONFIGS[method]),
           "--output_dir", str(out), "--report_to", "none", *extra]  # fmt: skip
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode != 0:
            raise SystemExit(f"{method} failed; see {log}")
    return json.loads((out / "metrics.json").read_text())


def row(method: str, m: dict) -> str:
    t = m["train"]
    return (f"| {method} | {m['test']['accuracy']:.4f} | {m['test']['macro_f1']:.4f} | "
            f"{t['train_time_s']:.0f} s | {t['samples_per_s']:.1f} | "
            f"{m['trainable_params']:,} of {m['total_params']:,} | {m['peak_memory_mb']:.0f} MB |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", type=Path, default=ROOT / "runs/method_table")
    p.add_argument("--max_train_samples", type=int, help="cut the training split for a quick look")
    args = p.parse_args()
    extra = ["--max_train_samples", str(args.max_train_samples)] if args.max_train_samples else []
    rows = []
    for method in args.methods:
        print(f"running {method} ...", flush=True)
        rows.append(row(method, run(method, args.out / method, extra)))
        print(rows[-1], flush=True)
    table = "\n".join([
        "| method | test accuracy | test macro-F1 | train time | samples/s | trainable params | peak memory |",
        "|---|---|---|---|---|---|---|", *rows,
    ])  # fmt: skip
    (args.out / "table.md").write_text(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
