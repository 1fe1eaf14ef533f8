"""Training speed: the classify recipe against the Hugging Face `Trainer`, interleaved in one run.

    python benchmarks/train_throughput.py --methods full lora frozen --repeats 2

Same model (minilm-l6), data (built-in rotten_tomatoes split, 10,202 train / 1,275 test), global
batch, epochs, seed, LR, max length and dynamic padding for every contender. Contenders:

- `recipe`: the shipped `sentiment_minilm_*.yaml` settings (`precision: auto`, length grouping, ...).
- `trainer`: the plain `Trainer` with its defaults, fp32 (what an example script does).
- `trainer_bf16`: the same with `bf16=True`.
- `trainer_best`: the best-configured `Trainer` a user can get from `TrainingArguments` alone:
  `bf16=True`, length-grouped batches and fused AdamW. Without it a recipe speed-up mostly measures
  length grouping, which the Trainer also has (one setting).

For `lora`, every Trainer contender gets the shipped config's adapter (r 8, alpha 16, dropout 0 on
query/key/value/dense, classifier trained), so the rows compare like with like.

Runs go A, B, C, A ... (reversed in odd repeats) so that a machine whose speed drifts (shared CPUs
do) hurts all contenders alike; compare ratios within one invocation only. The matmul peak is
measured before every repeat and at the end, and the load average around every run, because both
move on a shared machine. Prints a table (samples/s, real tokens/s, model FLOP/s as a share of the
median peak, test accuracy, train time, CPU seconds) and writes JSON after every run, so an
interrupted invocation keeps what it measured; `--table_from FILE` reprints it. On a loaded machine
CPU seconds of the training phase are the steadier comparison, and `--threads 1` stops OpenMP
threads spinning for a core another job holds. Never asserted by tests: speed is a measurement.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR = {"full": 5e-5, "lora": 5e-4, "frozen": 1e-3}
CONFIG = {m: ROOT / f"recipes/configs/sentiment_minilm_{m}.yaml" for m in LR}
CONTENDERS = ["recipe", "trainer_best", "trainer_bf16", "trainer"]


def lora_args() -> dict:
    """The shipped LoRA config's adapter options, given to every contender (same method, same dropout)."""
    import yaml

    return yaml.safe_load(CONFIG["lora"].read_text())["method_args"]


def matmul_peak(dtype_name: str, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of a large square matmul: the most this machine's cores give at this moment."""
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
    import nlp_transfer.pipeline as pipeline

    cpu = {"train": 0.0, "eval": 0.0}

    def timed(fn, key: str = "train"):
        """CPU seconds (all threads) spent in `fn`; the loop's validation is counted apart, as the
        Trainer contenders run none inside their timed `train()`."""
        sig = inspect.signature(fn)

        def wrapper(*a, **k):
            bound = sig.bind(*a, **k)
            if key == "train" and callable(bound.arguments.get("evaluate")):
                bound.arguments["evaluate"] = timed(bound.arguments["evaluate"], "eval")
            t = time.process_time()
            try:
                return fn(*bound.args, **bound.kwargs)
            finally:
                cpu[key] += time.process_time() - t

        return wrapper

    for name in ("fit", "_cache_features"):  # the loop, and the frozen encoder's one pass (training)
        if hasattr(pipeline, name):
            setattr(pipeline, name, timed(getattr(pipeline, name)))
    from nlp_transfer.methods import feature_cache

    encode = (
        feature_cache.encode
    )  # frozen: the validation split is encoded too, outside the wall-clock train time

    def encode_split(accelerator, model, loader, name, *a, **k):
        if name == "train":
            return encode(accelerator, model, loader, name, *a, **k)
        return timed(encode, "eval")(accelerator, model, loader, name, *a, **k)

    feature_cache.encode = encode_split
    m = run(cfg)
    return {"samples_per_s": m["train"]["samples_per_s"], "tokens_per_s": m["train"]["tokens_per_s"],
            "train_time_s": m["train"]["train_time_s"], "accuracy": m["test"]["accuracy"], "macro_f1": m["test"]["macro_f1"],
            "precision": m["train"]["mixed_precision"], "feature_cache_s": m["train"].get("feature_cache_s"),
            "cpu_s": cpu["train"], "eval_cpu_s": cpu["eval"], "settings": "shipped config"}  # fmt: skip


def trainer_options(kind: str) -> dict:
    """`TrainingArguments` for a Trainer contender; length grouping under its name in this transformers version.

    transformers 5 replaced the `group_by_length` flag with `train_sampling_strategy="group_by_length"`;
    4.x has only the flag. The default `optim` is left alone except for `trainer_best`, which names it.
    """
    from transformers import TrainingArguments

    opts: dict = {"bf16": kind != "trainer"}
    if kind == "trainer_best":
        fields = TrainingArguments.__dataclass_fields__
        if "train_sampling_strategy" in fields:
            opts["train_sampling_strategy"] = "group_by_length"
        else:
            opts["group_by_length"] = True
        opts["optim"] = "adamw_torch_fused"
    return opts


def run_trainer(method: str, kind: str, args: argparse.Namespace, out: Path) -> dict:
    """The HF Trainer on the same data and model; `kind` picks its settings (`trainer_options`)."""
    import numpy as np
    import torch
    import transformers
    from sklearn.metrics import f1_score
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
            LoraConfig(
                task_type=TaskType.SEQ_CLS, target_modules=["query", "key", "value", "dense"], **lora_args()
            ),
        )
    elif method == "frozen":
        for name, p in model.named_parameters():
            p.requires_grad = not name.startswith("bert.") or name.startswith("bert.pooler")
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64, num_train_epochs=args.epochs,
        learning_rate=LR[method], seed=args.seed, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
        logging_steps=50, warmup_steps=0.06, weight_decay=0.01, dataloader_num_workers=0, **trainer_options(kind),
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=targs, train_dataset=data["train"], data_collator=DataCollatorWithPadding(tok)
    )
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train()  # with length grouping this includes the sampler reading every example's length
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    pred = trainer.predict(data["test"])
    labels = np.argmax(pred.predictions, -1)
    n = len(data["train"]) * args.epochs
    tokens = sum(len(x) for x in data["train"]["input_ids"]) * args.epochs
    sampling = getattr(
        targs,
        "train_sampling_strategy",
        "group_by_length" if getattr(targs, "group_by_length", False) else "random",
    )
    settings = f"transformers {transformers.__version__}: bf16={targs.bf16}, optim={getattr(targs.optim, 'value', targs.optim)}, sampling={sampling}"
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"samples_per_s": n / elapsed, "tokens_per_s": tokens / elapsed, "train_time_s": elapsed,
            "accuracy": float((labels == pred.label_ids).mean()),
            "macro_f1": float(f1_score(pred.label_ids, labels, average="macro")),
            "precision": "bf16" if targs.bf16 else "no", "cpu_s": cpu, "settings": settings}  # fmt: skip


def one(kind: str, method: str, args: argparse.Namespace) -> dict:
    """One contender in a fresh process, so peak RSS and warm caches are its own."""
    if args.threads:  # same for every contender; 1 avoids OpenMP threads spinning for a core others hold
        import torch

        torch.set_num_threads(args.threads)
    out = ROOT / "runs" / "bench" / f"{kind}_{method}"
    result = run_recipe(method, args, out) if kind == "recipe" else run_trainer(method, kind, args, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def with_flops(rows: list[dict], peaks: list[dict], nonembed: int, epochs: float) -> dict[str, float]:
    """Add model TFLOP/s and its share of the median measured peak to each row; return that median."""
    median = {d: statistics.median(p[d] for p in peaks) for d in ("fp32", "bf16")}
    for r in rows:
        flops = flops_per_token(nonembed, r["method"]) * r["tokens_per_s"]
        if r.get("feature_cache_s") is not None:  # cached features: the encoder saw each token once
            flops /= epochs
        r["model_tflops"] = flops / 1e12
        r["peak_fraction"] = flops / median["bf16" if r["precision"] == "bf16" else "fp32"]
    return median


def ratio(recipe: dict, trainer: dict, key: str) -> float:
    """How many times faster the recipe is: by throughput, or by CPU seconds per trained sample.

    CPU time (all threads of the process, training phases only) is less hurt than wall-clock time
    when other jobs share the cores. The recipe's validation (`eval_cpu_s`, part of `cpu_s`: the
    loop's evaluation, and for `frozen` the encoding of the validation split) is taken off, as its
    wall-clock train time leaves it out too.
    """
    if key == "samples_per_s":
        return recipe[key] / trainer[key]
    per_sample = {
        r is recipe: (r["cpu_s"] - r.get("eval_cpu_s", 0.0)) / (r["samples_per_s"] * r["train_time_s"])
        for r in (recipe, trainer)
    }
    return per_sample[False] / per_sample[True]


def table(rows: list[dict], peaks: list[dict]) -> str:
    """The printed table, then recipe / Trainer ratios per repeat and their median over repeats."""
    lines = ["matrix peak (2048^2 matmul, this machine, during this run): " + "; ".join(
        f"{p['when']}: fp32 {p['fp32'] / 1e9:.0f}, bf16 {p['bf16'] / 1e9:.0f} GFLOP/s" for p in peaks)]  # fmt: skip
    lines.append(f"{'method':7s} {'contender':13s} {'rep':>3s} {'prec':5s} {'samples/s':>9s} {'tokens/s':>9s} "
                 f"{'TFLOP/s':>8s} {'%peak':>6s} {'RSS MB':>7s} {'acc':>6s} {'F1':>6s} {'train s':>8s} {'CPU s':>7s} {'load':>10s}")  # fmt: skip
    for r in rows:
        lines.append(f"{r['method']:7s} {r['contender']:13s} {r['repeat']:3d} {r['precision']:5s} {r['samples_per_s']:9.1f} "
                     f"{r['tokens_per_s']:9.0f} {r['model_tflops']:8.3f} {100 * r['peak_fraction']:5.1f}% {r['peak_rss_mb']:7.0f} "
                     f"{r['accuracy']:6.4f} {r['macro_f1']:6.4f} {r['train_time_s']:8.1f} {r.get('cpu_s', float('nan')):7.0f} {r['load_before']:4.2f}->{r['load_after']:4.2f}")  # fmt: skip
    for key, what in (("samples_per_s", "wall-clock samples/s"), ("cpu_s", "CPU seconds")):
        lines.append(f"\nrecipe / Trainer contender, {what}, same method and repeat (median over repeats):")
        for method in dict.fromkeys(r["method"] for r in rows):
            for kind in dict.fromkeys(r["contender"] for r in rows if r["contender"] != "recipe"):
                ratios = [
                    ratio(rec, tr, key)
                    for rec in rows if rec["method"] == method and rec["contender"] == "recipe"
                    for tr in rows if tr["method"] == method and tr["contender"] == kind and tr["repeat"] == rec["repeat"]
                    if key in rec and key in tr
                ]  # fmt: skip
                if ratios:
                    each = ", ".join(f"{x:.2f}" for x in ratios)
                    lines.append(
                        f"  {method:7s} recipe / {kind:13s} {statistics.median(ratios):.2f}x  ({each})"
                    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["full", "lora"], choices=list(LR))
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--repeat_contenders", nargs="+", default=None, choices=CONTENDERS,
                        help="contenders run again in repeats after the first (default: all); saves time when only one ratio matters")  # fmt: skip
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per run (0: torch's default, all cores)"
    )
    parser.add_argument("--json", default=str(ROOT / "docs" / "train_throughput.json"))
    parser.add_argument(
        "--table_from", help="print the table of a JSON this script wrote (also an interrupted run's)"
    )
    parser.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.table_from:  # reprint a saved (possibly interrupted) run
        saved = json.loads(Path(args.table_from).read_text())
        with_flops(saved["rows"], saved["peak_checks"], saved["nonembedding_params"], args.epochs)
        print(table(saved["rows"], saved["peak_checks"]))
        return
    if args._one:
        print("RESULT " + json.dumps(one(args._one[0], args._one[1], args)))
        return

    import torch
    from transformers import AutoModel

    from nlp_transfer.catalog import resolve_model

    if args.threads:  # the peak is measured with the threads the runs get
        torch.set_num_threads(args.threads)

    base = AutoModel.from_pretrained(resolve_model("minilm-l6").path)
    nonembed = sum(p.numel() for n, p in base.named_parameters() if "embeddings" not in n)
    del base
    passthrough = [
        "--epochs",
        str(args.epochs),
        "--batch_size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    if args.max_train_samples:
        passthrough += ["--max_train_samples", str(args.max_train_samples)]
    rows: list[dict] = []
    peaks: list[dict] = []
    failures: list[dict] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())

    def save(complete: bool) -> None:
        median = with_flops(rows, peaks, nonembed, args.epochs)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "started": started, "complete": complete, "command": sys.argv, "torch_threads": torch.get_num_threads(), "peak_flops": median,
            "peak_checks": peaks, "nonembedding_params": nonembed, "rows": rows, "failures": failures,
        }, indent=2))  # fmt: skip

    for rep in range(args.repeats):
        peaks.append({"when": f"before repeat {rep}", **{d: matmul_peak(d) for d in ("fp32", "bf16")}})
        kinds = args.contenders if rep == 0 or not args.repeat_contenders else [
            k for k in args.contenders if k in args.repeat_contenders
        ]  # fmt: skip
        kinds = kinds if rep % 2 == 0 else kinds[::-1]  # ABC, CBA, ...: drift hits both ends alike
        for method in args.methods:
            for kind in kinds:
                load_before = os.getloadavg()[0]
                cmd = [sys.executable, __file__, "--_one", kind, method, *passthrough]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:  # keep going: one broken contender should not cost the others' hour
                    print(proc.stderr[-3000:], file=sys.stderr)
                    print(f"[{rep}] {method:6s} {kind:13s} FAILED (exit {proc.returncode})", flush=True)
                    failures.append(
                        {"contender": kind, "method": method, "repeat": rep, "stderr": proc.stderr[-3000:]}
                    )
                    continue
                r = json.loads(line[7:]) | {"contender": kind, "method": method, "repeat": rep}
                r |= {"load_before": load_before, "load_after": os.getloadavg()[0]}
                rows.append(r)
                print(f"[{rep}] {method:6s} {kind:13s} {r['samples_per_s']:7.1f} samples/s  acc {r['accuracy']:.4f}  "
                      f"load {load_before:.2f}->{r['load_after']:.2f}  {r['settings']}", flush=True)  # fmt: skip
                save(complete=False)
    peaks.append({"when": "end", **{d: matmul_peak(d) for d in ("fp32", "bf16")}})
    save(complete=True)
    print("\n" + table(rows, peaks))


if __name__ == "__main__":
    main()
