"""Serving speed: per-request latency of a sentiment run and a summarisation run.

    python benchmarks/inference_latency.py --classifier runs/sentiment_minilm_lora \
        --summariser runs/summarize_smollm2_lora --requests 200 --summaries 8

Each run is measured as trained (adapter unmerged, PEFT's extra matmuls on every layer) and merged
into its base in memory (`merge_and_unload`, what `nlp-transfer merge` saves), each in fp32 and
under bf16 autocast. Sentiment: one review per request (batch 1, the demo's case), p50/p95 over
`--requests` real test reviews. Summarisation: greedy generation of one wiki_lead test article per
request, time to first token (prefill) and decode tokens/s, with and without the KV cache.
`--summariser smollm2-135m` (a built-in name) measures the zero-shot base instead of a run.
Prints a table and writes JSON; never asserted by tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from transformers import TextIteratorStreamer

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def autocast(bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def variants(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    """The model as loaded, then merged (PEFT runs only; merging is in place, so it comes last)."""
    yield "unmerged" if hasattr(model, "merge_and_unload") else "full weights", model
    if hasattr(model, "merge_and_unload"):
        yield "merged", model.merge_and_unload().eval()


def time_calls(fn: Callable[[], object], n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def classifier_rows(run: str, n: int) -> list[dict]:
    from nlp_transfer.data import rotten_tomatoes
    from nlp_transfer.predict import load_predictor

    reviews = list(rotten_tomatoes.load(seed=42)["test"]["text"][:n])
    predictor = load_predictor(run)
    rows = []
    for variant, model in variants(predictor.model):
        predictor.model = model
        for bf16 in (False, True):
            it = iter(reviews * 2)
            with autocast(bf16):
                ms = time_calls(lambda it=it: predictor.predict([next(it)]), n)
            rows.append({"task": "sentiment", "variant": variant, "dtype": "bf16" if bf16 else "fp32",
                         "p50_ms": pct(ms, 0.5), "p95_ms": pct(ms, 0.95), "requests": n})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def one_summary(predictor, text: str, max_new: int, use_cache: bool) -> tuple[float, float, int]:
    """(time to first token ms, decode tokens/s after the first, new tokens) for one greedy request."""
    from nlp_transfer.tasks import generation

    ids, mask = predictor._inputs([text], max_new)
    streamer = TextIteratorStreamer(predictor.tokenizer, skip_prompt=True)
    stamps: list[float] = []
    original = streamer.put

    def put(value: torch.Tensor) -> None:  # called once for the prompt, then once per new token
        stamps.append(time.perf_counter())
        original(value)

    streamer.put = put  # type: ignore[method-assign]
    start = time.perf_counter()
    new = generation.generate(
        predictor.model, predictor.tokenizer, ids, mask, max_new, streamer=streamer, use_cache=use_cache
    )
    n_new = int((new != predictor.tokenizer.pad_token_id).sum())
    token_stamps = stamps[1:]  # the first put is the prompt itself
    ttft = (token_stamps[0] - start) * 1000 if token_stamps else float("nan")
    decode = (len(token_stamps) - 1) / (token_stamps[-1] - token_stamps[0]) if len(token_stamps) > 1 else 0.0
    return ttft, decode, n_new


def summariser_rows(run: str, n: int, max_new: int) -> list[dict]:
    from nlp_transfer.data.wiki_lead import load_wiki_lead
    from nlp_transfer.predict import load_predictor
    from nlp_transfer.tasks.summary_model import load_zero_shot_summariser

    articles = list(load_wiki_lead(seed=42)["test"]["document"][:n])
    is_run = Path(run).is_dir() or "/" in run
    predictor = load_predictor(run) if is_run else load_zero_shot_summariser(run)
    rows = []
    for variant, model in variants(predictor.model):
        predictor.model = model
        for bf16, cache in ((False, True), (True, True), (True, False)):
            with autocast(bf16):
                one_summary(predictor, articles[0], 8, cache)  # warm-up
                res = [one_summary(predictor, a, max_new, cache) for a in articles]
            rows.append({
                "task": "summarisation", "variant": variant, "dtype": "bf16" if bf16 else "fp32",
                "kv_cache": cache, "ttft_p50_ms": pct([r[0] for r in res], 0.5),
                "ttft_p95_ms": pct([r[0] for r in res], 0.95),
                "decode_tok_s": statistics.mean(r[1] for r in res),
                "mean_new_tokens": statistics.mean(r[2] for r in res), "requests": n,
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = []
    sent = [r for r in rows if r["task"] == "sentiment"]
    if sent:
        lines += [
            "| sentiment (1 review/request) | dtype | p50 ms | p95 ms | requests |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r['variant']} | {r['dtype']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['requests']} |"
                  for r in sent]  # fmt: skip
    summ = [r for r in rows if r["task"] == "summarisation"]
    if summ:
        lines += ["", "| summarisation (1 article/request) | dtype | KV cache | TTFT p50 ms | TTFT p95 ms | "
                  "decode tokens/s | mean new tokens |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['variant']} | {r['dtype']} | {'on' if r['kv_cache'] else 'off'} | {r['ttft_p50_ms']:.0f} | "
                  f"{r['ttft_p95_ms']:.0f} | {r['decode_tok_s']:.1f} | {r['mean_new_tokens']:.0f} |"
                  for r in summ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", help="a classification run directory (or Hub id)")
    p.add_argument("--summariser", help="a summarisation run directory, Hub id, or built-in model name")
    p.add_argument("--requests", type=int, default=200, help="sentiment requests per setting")
    p.add_argument("--summaries", type=int, default=8, help="summarisation requests per setting")
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    p.add_argument("--out", type=Path, default=ROOT / "runs/benchmarks/inference_latency.json")
    args = p.parse_args()
    if not (args.classifier or args.summariser):
        p.error("give --classifier and/or --summariser")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    if args.classifier:
        rows += classifier_rows(args.classifier, args.requests)
    if args.summariser:
        rows += summariser_rows(args.summariser, args.summaries, args.max_new_tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}\n" + table(rows))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
