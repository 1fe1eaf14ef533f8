"""Load test of the demo's sentiment endpoint, and adapter switching vs base-model loading.

    python benchmarks/demo_load.py [--adapters runs/demo_minilm_lora_lr3e-3 runs/demo_minilm_lora] [--requests 50]

1. Starts `python demo/app.py` on a free 127.0.0.1 port (or uses --url), sends --requests concurrent
   /classify calls through gradio_client and prints client-side p50/p95 latency (queue wait included),
   the model time the server reports, throughput and failures.
2. In this process: time to load the base model (+ first adapter), to attach another adapter from disk
   (`load_adapter`), to switch (`set_adapter`), and to reload a whole predictor (what a demo without
   multi-adapter support does on every switch).
Numbers are printed, never asserted: on a shared 2-core machine they move 5-10x between runs.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REVIEWS = [
    "A gorgeous, moving film with a superb cast.",
    "Tedious, overlong and badly acted.",
    "Not great, not terrible: a watchable thriller.",
    "The script is clumsy but the lead performance is wonderful.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def start_demo(adapters: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "demo/app.py",
        "--adapters",
        *adapters,
        "--port",
        str(port),
        "--no-examples",
        "--zero-shot-base",
        "none",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the demo exited:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    sys.exit(f"the demo did not start within 300 s:\n{log.read_text()[-2000:]}")


def load_test(url: str, requests: int) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    names = [a["name"] for a in client.predict(api_name="/adapters") if a["task"] == "classification"]
    if not names:
        sys.exit("no sentiment adapter is served; train one (see demo/README.md)")
    for name in names:  # warm-up, not measured
        client.predict(REVIEWS[0], name, api_name="/classify")

    def one(i: int) -> tuple[float, float | None, str | None]:
        start = time.perf_counter()
        try:
            _, _, latency = client.predict(
                REVIEWS[i % len(REVIEWS)], names[i % len(names)], api_name="/classify"
            )
        except Exception as e:  # a failed request is a result here, not a crash
            return time.perf_counter() - start, None, f"{type(e).__name__}: {e}"
        match = re.search(r"([\d.]+) ms", latency)
        return time.perf_counter() - start, float(match.group(1)) if match else None, None

    start = time.perf_counter()
    with ThreadPoolExecutor(requests) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    failures = [err for _, _, err in results if err]
    total_ms = [t * 1000 for t, _, err in results if not err]
    model_ms = [m for _, m, err in results if m is not None and not err]
    print(f"\n## /classify: {requests} concurrent requests over {len(names)} adapter(s) ({', '.join(names)})")
    print("| | p50 | p95 | max |\n|---|---|---|---|")
    if total_ms:
        print(
            f"| client latency, queue included (ms) | {percentile(total_ms, 50):.0f} | {percentile(total_ms, 95):.0f} | {max(total_ms):.0f} |"
        )
    if model_ms:
        print(
            f"| model time reported by the server (ms) | {percentile(model_ms, 50):.1f} | {percentile(model_ms, 95):.1f} | {max(model_ms):.1f} |"
        )
    print(
        f"\nfailures: {len(failures)} of {requests}; wall time {wall:.2f} s ({requests / wall:.1f} requests/s)"
    )
    for err in failures[:5]:
        print(f"  {err}")


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def switch_vs_load(adapters: list[str]) -> None:
    """Times for the operations a multi-adapter demo saves, measured in this process."""
    import torch

    from demo import registry as reg
    from nlp_transfer.predict import load_predictor

    threads = max(1, (os.cpu_count() or 1) // 2)  # what the demo uses with its default concurrency of 2
    torch.set_num_threads(threads)
    found, _ = reg.discover(adapters)
    runs = [a for a in found if a.task == "classification" and a.is_peft]
    if not runs:
        print("\n(no PEFT sentiment adapter found: skipping switch vs load)")
        return
    first, second = runs[0], runs[1] if len(runs) > 1 else runs[0]  # one adapter: attach it twice

    predictor, cold = timed(load_predictor, str(first.path))  # includes first-use costs (imports, file cache)
    _, warm = timed(load_predictor, str(first.path))
    _, attach = timed(predictor.model.load_adapter, str(second.path), "second")
    switch = statistics.median(
        timed(predictor.model.set_adapter, ("second", "default")[i % 2])[1] for i in range(200)
    )
    with torch.no_grad():
        predictor.logits([REVIEWS[0]])  # warm-up
        forward = statistics.median(timed(predictor.logits, [REVIEWS[0]])[1] for _ in range(5))
    _, reload_s = timed(load_predictor, str(second.path))

    print(
        f"\n## Switching adapters vs loading the base model ({first.base_model}; {first.name}, {second.name}; {threads} thread(s))"
    )
    print("| operation | time |\n|---|---|")
    print(
        f"| load base model + first adapter (`load_predictor`), first time in the process | {cold * 1000:.0f} ms |"
    )
    print(f"| load base model + first adapter (`load_predictor`), again | {warm * 1000:.0f} ms |")
    print(
        f"| reload a whole predictor for another adapter (a demo without multi-adapter) | {reload_s * 1000:.0f} ms |"
    )
    print(
        f"| attach another adapter from disk (`load_adapter`, once per adapter at start-up) | {attach * 1000:.0f} ms |"
    )
    print(f"| switch adapter (`set_adapter`, median of 200) | {switch * 1000:.2f} ms |")
    print(f"| one forward pass on a short review (median of 5), for scale | {forward * 1000:.1f} ms |")
    print(f"\nswitching is {reload_s / switch:,.0f}x faster than reloading a predictor")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapters", nargs="+", default=["runs/demo_minilm_lora_lr3e-3", "runs/demo_minilm_lora"])
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--url", help="benchmark an already running demo instead of starting one")
    args = p.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the base's "classifier MISSING" report: the adapter brings the head
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    if args.url:
        load_test(args.url, args.requests)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = start_demo(args.adapters, Path(tmp) / "demo.log")
            try:
                load_test(url, args.requests)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    switch_vs_load(args.adapters)


if __name__ == "__main__":
    main()
