"""What each training-speed setting gives: ms per optimizer step with one setting switched back.

    python benchmarks/step_ablation.py --methods full lora --steps 20

MiniLM-L6, batches of 32 real Rotten Tomatoes reviews in the order the recipe feeds them, the
recipe's settings (bf16 autocast, bf16 compute weights over fp32 masters for full fine-tuning,
length-grouped batches, fused AdamW, glibc heap kept, no LoRA dropout, SDPA attention), then the
same with exactly one of them reverted (`--settings` picks rows). Each row runs in a fresh process
(the allocator setting cannot be undone in-process). Prints a table and writes JSON; never
asserted by tests. `train_throughput.py` is the end-to-end comparison; this says where it comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {"bf16": True, "grouped": True, "fused": True, "keep_heap": True, "lora_dropout": 0.0, "attn": "sdpa",
          "bf16_base": True, "model_dropout": None, "bf16_weights": True}
REVERTS = {
    "recipe settings": {},
    "fp32 (no bf16 autocast)": {"bf16": False},
    "autocast over fp32 weights (no bf16 copy)": {"bf16_weights": False},
    "random batches (no length grouping)": {"grouped": False},
    "for-each AdamW (not fused)": {"fused": False},
    "glibc default (heap trimmed)": {"keep_heap": False},
    "LoRA dropout 0.1": {"lora_dropout": 0.1},
    "eager attention (not SDPA)": {"attn": "eager"},
    "LoRA base kept fp32 (cast every step)": {"bf16_base": False},
    "(not used) model dropout 0": {"model_dropout": 0.0},
    "(not used) model dropout 0, eager attention": {"model_dropout": 0.0, "attn": "eager"},
}


def measure(method: str, settings: dict, steps: int, batch_size: int) -> dict:
    from nlp_transfer.training import cpu_speed

    if settings["keep_heap"]:
        cpu_speed.keep_freed_memory()
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from nlp_transfer.catalog import resolve_model
    from nlp_transfer.data import rotten_tomatoes
    from nlp_transfer.data.batching import EpochSampler
    from nlp_transfer.methods import get_method
    from nlp_transfer.tasks.classification import build_classifier
    from nlp_transfer.training.bf16_weights import Bf16ComputeModel

    torch.manual_seed(0)
    path = resolve_model("minilm-l6").path
    tok = AutoTokenizer.from_pretrained(path)
    train = rotten_tomatoes.load(seed=42)["train"]
    enc = [dict(tok(t, truncation=True, max_length=128), labels=y) for t, y in zip(train["text"], train["label"], strict=True)]
    order = list(EpochSampler([len(e["input_ids"]) for e in enc], batch_size, seed=42, group_by_length=settings["grouped"]))
    collate = DataCollatorWithPadding(tok)
    starts = range(0, len(order) - batch_size + 1, batch_size)
    picked = [starts[round(j * (len(starts) - 1) / (steps + 2))] for j in range(steps + 3)]  # spread over the epoch
    batches = [collate([enc[i] for i in order[k : k + batch_size]]) for k in picked]
    model = build_classifier(path, ["negative", "positive"], tok.pad_token_id, False)
    if settings["model_dropout"] is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = settings["model_dropout"]
        model.config.attention_probs_dropout_prob = settings["model_dropout"]
    model.set_attn_implementation(settings["attn"])
    args = {"lora_dropout": settings["lora_dropout"]} if method == "lora" else {}
    prepared = get_method(method).prepare(model, args, task="classification", lr=1e-4, weight_decay=0.01)
    model = prepared.model.train()
    if method == "lora" and settings["bf16"] and settings["bf16_base"]:
        cpu_speed.store_frozen_linears(model, torch.bfloat16)
    opt = cpu_speed.adamw(prepared.param_groups, 1e-4, fused=settings["fused"])
    if method != "lora" and settings["bf16"] and settings["bf16_weights"]:
        model = Bf16ComputeModel(model).train()
        model.watch(opt)
    params = [p for g in prepared.param_groups for p in g["params"]]
    times, tokens = [], 0
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings["bf16"]):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 3:  # warm-up steps: first-touch allocations, oneDNN kernel selection
            times.append(time.perf_counter() - start)
            tokens += int(batch["attention_mask"].sum())
    times.sort()
    return {"ms_per_step": 1000 * times[len(times) // 2], "samples_per_s": batch_size / times[len(times) // 2],
            "padded_tokens_per_batch": sum(b["input_ids"].numel() for b in batches[3:]) / len(times),
            "real_tokens_per_batch": tokens / len(times)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["full", "lora"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--settings", nargs="+", default=list(REVERTS), choices=list(REVERTS), help="rows to run (the recipe row always runs)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--json", default=str(ROOT / "runs" / "bench" / "step_ablation.json"))
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args._one:
        method, name = json.loads(args._one)
        print("RESULT " + json.dumps(measure(method, {**RECIPE, **REVERTS[name]}, args.steps, args.batch_size)))
        return
    rows = []
    for method in args.methods:
        for name in ["recipe settings", *(n for n in args.settings if n != "recipe settings")]:
            if ("LoRA" in name and method != "lora") or ("bf16 copy" in name and method == "lora"):
                continue
            cmd = [sys.executable, __file__, "--_one", json.dumps([method, name]), "--steps", str(args.steps), "--batch_size", str(args.batch_size)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{method} / {name} failed:\n{proc.stderr[-3000:]}")
            rows.append({"method": method, "setting": name, **json.loads(line[7:])})
            print(f"{method:5s} {name:38s} {rows[-1]['ms_per_step']:7.1f} ms/step", flush=True)
    print("\n| method | setting | ms/step (median) | samples/s | vs recipe | padded / real tokens per batch |\n|---|---|---|---|---|---|")
    for r in rows:
        ref = next(x for x in rows if x["method"] == r["method"] and x["setting"] == "recipe settings")
        print(f"| {r['method']} | {r['setting']} | {r['ms_per_step']:.0f} | {r['samples_per_s']:.1f} | "
              f"{r['ms_per_step'] / ref['ms_per_step']:.2f}x | {r['padded_tokens_per_batch']:.0f} / {r['real_tokens_per_batch']:.0f} |")  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
