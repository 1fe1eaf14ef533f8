"""Training speed: the classify recipe against the plain Hugging Face `Trainer`, interleaved.

    python benchmarks/train_throughput.py --methods full lora --epochs 2 --repeats 1

Same model (minilm-l6), data (built-in rotten_tomatoes split), global batch, epochs, seed, max
length and dynamic padding for every contender. Runs go A, B, C, A, B, C ... so that a machine
whose speed drifts (shared CPUs do, by 5-10x) hurts all contenders alike. Prints a table and writes
JSON: samples/s, real (non-pad) tokens/s, model FLOP/s and its share of the matrix peak this script
measures itself, peak RSS, test accuracy. Never asserted by tests: speed is a measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR = {"full": 5e-5, "lora": 5e-4, "frozen": 1e-3}


def lora_args() -> dict:
    """The shipped LoRA config's adapter options, given to both contenders (same method, same dropout)."""
    import yaml

    return yaml.safe_load((ROOT / "recipes/configs/sentiment_minilm_lora.yaml").read_text())["method_args"]


def matmul_peak(dtype_name: str, n: int = 2048, reps: int = 10) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


def flops_per_token(n_params_nonembed: int, method: str) -> float:
    """Forward 2N; backward 4N when weight gradients are needed (full), ~2N when only activations are."""
    return {"full": 6, "lora": 4, "frozen": 2}[method] * n_params_nonembed


def run_recipe(method: str, args: argparse.Namespace, out: Path) -> dict:
    from nlp_transfer.config import from_dict
    from nlp_transfer.pipeline import run
    from nlp_transfer.train_config import TrainConfig

    cfg = from_dict(TrainConfig, {
        "model": "minilm-l6", "method": method, "lr": LR[method], "epochs": args.epochs, "batch_size": args.batch_size,
        "max_length": 128, "seed": args.seed, "report_to": "none", "output_dir": str(out), "overwrite_output_dir": True,
        "max_train_samples": args.max_train_samples, "precision": "auto", "save_every": 10**9, "eval_every": 10**9,
        "method_args": lora_args() if method == "lora" else {},
    })  # fmt: skip
    m = run(cfg)
    return {"samples_per_s": m["train"]["samples_per_s"], "tokens_per_s": m["train"]["tokens_per_s"],
            "train_time_s": m["train"]["train_time_s"], "accuracy": m["test"]["accuracy"], "macro_f1": m["test"]["macro_f1"],
            "precision": m["train"]["mixed_precision"], "feature_cache_s": m["train"].get("feature_cache_s")}  # fmt: skip


def run_trainer(method: str, bf16: bool, args: argparse.Namespace, out: Path) -> dict:
    """The plain HF Trainer with its defaults (what an example script does)."""
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from nlp_transfer.catalog import resolve_model
    from nlp_transfer.data import rotten_tomatoes

    set_seed(args.seed)
    path = resolve_model("minilm-l6").path
    tok = AutoTokenizer.from_pretrained(path)
    data = rotten_tomatoes.load(seed=42)
    if args.max_train_samples:
        data["train"] = data["train"].select(range(args.max_train_samples))
    data = data.map(
        lambda b: tok(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"]
    )
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    if method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query", "key", "value", "dense"], **lora_args()),
        )
    elif method == "frozen":
        for name, p in model.named_parameters():
            p.requires_grad = not name.startswith("bert.") or name.startswith("bert.pooler")
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64, num_train_epochs=args.epochs,
        learning_rate=LR[method], seed=args.seed, bf16=bf16, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
        logging_steps=50, warmup_steps=0.06, weight_decay=0.01, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=targs, train_dataset=data["train"], data_collator=DataCollatorWithPadding(tok)
    )
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    pred = trainer.predict(data["test"])
    acc = float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())
    from sklearn.metrics import f1_score

    n = len(data["train"]) * args.epochs
    tokens = sum(len(x) for x in data["train"]["input_ids"]) * args.epochs
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"samples_per_s": n / elapsed, "tokens_per_s": tokens / elapsed, "train_time_s": elapsed, "accuracy": acc,
            "macro_f1": float(f1_score(pred.label_ids, np.argmax(pred.predictions, -1), average="macro")),
            "precision": "bf16" if bf16 else "no"}  # fmt: skip


def one(kind: str, method: str, args: argparse.Namespace) -> dict:
    """One contender in a fresh process, so peak RSS and warm caches are its own."""
    out = ROOT / "runs" / "bench" / f"{kind}_{method}"
    if kind == "recipe":
        result = run_recipe(method, args, out)
    else:
        result = run_trainer(method, kind == "trainer_bf16", args, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["full", "lora"], choices=list(LR))
    parser.add_argument("--contenders", nargs="+", default=["recipe", "trainer", "trainer_bf16"])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default=str(ROOT / "runs" / "bench" / "train_throughput.json"))
    parser.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args._one:
        print("RESULT " + json.dumps(one(args._one[0], args._one[1], args)))
        return

    peak = {d: matmul_peak(d) for d in ("fp32", "bf16")}
    from transformers import AutoModel

    from nlp_transfer.catalog import resolve_model

    base = AutoModel.from_pretrained(resolve_model("minilm-l6").path)
    nonembed = sum(p.numel() for n, p in base.named_parameters() if "embeddings" not in n)
    rows = []
    passthrough = [
        "--epochs",
        str(args.epochs),
        "--batch_size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
    ]
    if args.max_train_samples:
        passthrough += ["--max_train_samples", str(args.max_train_samples)]
    for rep in range(args.repeats):
        for method in args.methods:
            for kind in args.contenders:
                cmd = [sys.executable, __file__, "--_one", kind, method, *passthrough]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{kind} {method} failed")
                r = json.loads(line[7:]) | {"contender": kind, "method": method, "repeat": rep}
                flops = flops_per_token(nonembed, method) * r["tokens_per_s"]
                if r.get("feature_cache_s") is not None:  # cached features: the encoder saw each token once
                    flops /= args.epochs
                r["model_tflops"] = flops / 1e12
                r["peak_fraction"] = flops / peak["bf16" if r["precision"] == "bf16" else "fp32"]
                rows.append(r)
                print(
                    f"[{rep}] {method:6s} {kind:13s} {r['samples_per_s']:7.1f} samples/s  acc {r['accuracy']:.4f}",
                    flush=True,
                )
    print(
        f"\nmatrix peak (2048^2, this machine, now): fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s"
    )
    print(
        f"{'method':7s} {'contender':13s} {'prec':5s} {'samples/s':>9s} {'tokens/s':>9s} {'TFLOP/s':>8s} {'%peak':>6s} {'RSS MB':>7s} {'acc':>6s} {'F1':>6s}"
    )
    for r in rows:
        print(f"{r['method']:7s} {r['contender']:13s} {r['precision']:5s} {r['samples_per_s']:9.1f} {r['tokens_per_s']:9.0f} "
              f"{r['model_tflops']:8.3f} {100 * r['peak_fraction']:5.1f}% {r['peak_rss_mb']:7.0f} {r['accuracy']:6.4f} {r['macro_f1']:6.4f}")  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"peak_flops": peak, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
