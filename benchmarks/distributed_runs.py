"""Distributed runs on this machine, as tables: the recipe per launch mode, and exit aborts.

    python benchmarks/distributed_runs.py recipe --modes cpu cpu_ddp deepspeed_zero2 \
        --max_train_samples 2000 --precision fp32
    python benchmarks/distributed_runs.py scaling --world 8
    python benchmarks/distributed_runs.py aborts --config accelerate_configs/deepspeed_zero3.yaml \
        --runs 20 --shutdown plain clean

`recipe` runs recipes/classify.py (built-in minilm-l6 + rotten_tomatoes, LoRA config) once per
accelerate config through `nlp-transfer launch`, with the same global batch everywhere (per-process
batch = global / processes), and prints test accuracy, macro-F1, training time and wall time.
A mode `cpu+omp1` runs cpu.yaml with OMP_NUM_THREADS=1 (a busy 2-core machine can make the
default 2 OpenMP threads several times slower than 1; torchrun gives each rank 1 thread).
`scaling` prints the model-state memory and communication formulas of docs/scaling.md evaluated for
BERT-base, SmolLM2-135M and a 7B decoder (parameters counted on the meta device, nothing loaded).
`aborts` repeats a 2-process tiny-model run (tests/dist_scripts/train_tiny.py) and counts ranks
that die at exit with "terminate called without an active exception" (or any non-zero exit), for
each shutdown variant: `none` (process group never destroyed), `plain` (Accelerate's
end_training: destroy without a barrier), `clean` (nlp-transfer: barrier, then destroy).
Timings on a shared 2-core machine are noisy: compare rows of one invocation only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ABORT = "terminate called without an active exception"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def _processes(config: Path) -> int:
    return int(yaml.safe_load(config.read_text()).get("num_processes", 1))


def recipe(args: argparse.Namespace) -> None:
    rows = []
    for mode in args.modes:
        # "cpu+omp1": the same config with OMP_NUM_THREADS=1 (torchrun gives each rank 1 thread)
        name, _, omp = mode.partition("+omp")
        config = ROOT / "accelerate_configs" / f"{name}.yaml"
        n = _processes(config)
        out = Path(args.work) / f"recipe_{mode}"
        cmd = [
            sys.executable, "-m", "nlp_transfer.launch", "--config_file", str(config), "recipes/classify.py",
            "--config", args.config, "--output_dir", str(out), "--overwrite_output_dir", "true",
            "--batch_size", str(args.global_batch // n), "--epochs", str(args.epochs), "--precision", args.precision,
            "--max_train_samples", str(args.max_train_samples), "--report_to", "none", "--seed", str(args.seed),
        ]  # fmt: skip
        start = time.perf_counter()
        env = _env(OMP_NUM_THREADS=omp) if omp else _env()
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(f"{mode}: exit {result.returncode}\n{result.stderr[-3000:]}", file=sys.stderr)
            rows.append((mode, n, None, None, None, wall))
            continue
        m = json.loads((out / "metrics.json").read_text())
        rows.append((mode, m["train"]["processes"], m["test"]["accuracy"], m["test"]["macro_f1"], m["train"]["train_time_s"], wall))
        print(f"done {mode}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\n{args.max_train_samples} training examples, {args.epochs} epoch(s), global batch {args.global_batch}, precision {args.precision}")
    print("| mode | processes | test accuracy | test macro-F1 | train time (s) | wall time (s) |\n|---|---|---|---|---|---|")
    for mode, n, acc, f1, train, wall in rows:
        cells = [f"{acc:.4f}", f"{f1:.4f}", f"{train:.0f}"] if acc is not None else ["failed"] * 3
        print(f"| {mode} | {n} | {' | '.join(cells)} | {wall:.0f} |")


def _run_bounded(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """(exit code or None when it hung and was killed, combined output); kills every rank on timeout."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return None, proc.communicate()[0]


def _tiny_assets(root: Path) -> tuple[Path, Path]:
    """A tiny random BERT (MiniLM's tokenizer) and synthetic review CSVs, as the tests use."""
    sys.path.insert(0, str(ROOT / "tests"))
    import pandas as pd
    import torch
    from transformers import AutoModel, AutoTokenizer, BertConfig

    from conftest import synthetic_reviews
    from nlp_transfer.catalog import resolve_model

    model, data = root / "bert", root / "reviews"
    if not model.exists():
        torch.manual_seed(0)
        tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6").path)
        config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
        AutoModel.from_config(config).save_pretrained(model)
        tok.save_pretrained(model)
        data.mkdir(parents=True, exist_ok=True)
        for split, n, seed in (("train", 192, 0), ("validation", 48, 1), ("test", 48, 2)):
            pd.DataFrame(synthetic_reviews(n, seed)).to_csv(data / f"{split}.csv", index=False)
    return model, data


def aborts(args: argparse.Namespace) -> None:
    model, data = _tiny_assets(Path(args.work) / "tiny")
    rows = []
    for shutdown in args.shutdown:
        aborted = failed = hung = 0
        walls = []
        for i in range(args.runs):
            out = Path(args.work) / f"abort_{shutdown}_{i}"
            cfg = dict(
                model=str(model), dataset=str(data), method="lora", method_args={"r": 4}, lr=1e-2, batch_size=8,
                precision="fp32", report_to="none", max_length=32, max_steps=4, eval_every=2, output_dir=str(out),
                overwrite_output_dir=True, _n_train=192,
            )  # fmt: skip
            cmd = [
                sys.executable, "-m", "nlp_transfer.launch", "--config_file", args.config,
                "tests/dist_scripts/train_tiny.py", str(out / "record"), json.dumps(cfg),
            ]  # fmt: skip
            start = time.perf_counter()
            code, text = _run_bounded(cmd, _env(DIST_TEST_SHUTDOWN=shutdown), args.timeout)
            walls.append(time.perf_counter() - start)
            (Path(args.work) / f"abort_{shutdown}_{i}.log").write_text(text)
            aborted += ABORT in text
            failed += code != 0
            hung += code is None
            print(f"{shutdown} run {i}: exit {code}, abort={ABORT in text}, {walls[-1]:.0f} s", file=sys.stderr, flush=True)
        rows.append((shutdown, args.runs, aborted, failed, hung, sum(walls) / len(walls)))
    print(f"\n{args.config}: {args.runs} two-process runs per shutdown variant")
    print("| shutdown | runs | runs with an exit abort | runs with non-zero exit | of them hung (killed) | mean wall time (s) |")
    print("|---|---|---|---|---|---|")
    for shutdown, runs, aborted, failed, hung, wall in rows:
        print(f"| {shutdown} | {runs} | {aborted} | {failed} | {hung} | {wall:.0f} |")


# (name, config kwargs, LoRA target modules): the classifier versions of the three models
SCALING_MODELS = [
    ("BERT-base", "bert", {}, ["query", "key", "value", "dense"]),
    ("SmolLM2-135M", "llama", dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True), ["q_proj", "k_proj", "v_proj", "o_proj"]),
    ("7B decoder (Llama-2-7B shape)", "llama", dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32), ["q_proj", "k_proj", "v_proj", "o_proj"]),
]


def _counts(model_type: str, kwargs: dict, targets: list[str], r: int = 8) -> tuple[int, int]:
    """(all parameters, LoRA-r trainable incl. the 2-class head) of a sequence classifier."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(model_type, num_labels=2, pad_token_id=0, **kwargs)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    lora = sum(r * (m.in_features + m.out_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets)
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("classifier", "score")))
    return total, lora + head


def model_state_bytes(psi: float, trainable: float, n: int, w: float = 2, g: float = 2, k: float = 12) -> dict[str, float]:
    """Per-device bytes of weights + gradients + optimizer state (activations excluded)."""
    return {
        "DDP": w * psi + (g + k) * trainable,
        "ZeRO-2": w * psi + (g + k) * trainable / n,
        "ZeRO-3 / FSDP": (w * psi + (g + k) * trainable) / n,
        # offloaded: the device holds only the gathered working set (a layer or two); this is the
        # CPU RAM each rank needs for its partition of weights, gradients and optimizer state
        "ZeRO-3 + offload (CPU RAM per rank)": (w * psi + (g + k) * trainable) / n,
    }


def comm_bytes(psi: float, trainable: float, n: int, w: float = 2, g: float = 2) -> dict[str, float]:
    """Bytes each rank sends per optimizer step without accumulation (ring collectives)."""
    f = (n - 1) / n
    return {"DDP": 2 * f * g * trainable, "ZeRO-2": f * (g + w) * trainable, "ZeRO-3 / FSDP": f * (2 * w * psi + g * trainable)}


def scaling(args: argparse.Namespace) -> None:
    gb = 1e9
    print(f"bf16 weights/grads (w=g=2 B), fp32 master + Adam (K=12 B) per trainable parameter; N = {args.world}")
    for name, model_type, kwargs, targets in SCALING_MODELS:
        psi, lora = _counts(model_type, kwargs, targets)
        for method, trainable in (("full", psi), ("LoRA r=8", lora)):
            mem = model_state_bytes(psi, trainable, args.world)
            comm = comm_bytes(psi, trainable, args.world)
            print(
                f"| {name} | {psi / 1e6:,.1f}M | {method} | {trainable / 1e6:,.2f}M | "
                + " | ".join(f"{v / gb:.2f}" for v in mem.values())
                + " | "
                + " | ".join(f"{v / gb:.3f}" for v in comm.values())
                + " |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("recipe")
    p.add_argument("--modes", nargs="+", default=["cpu", "cpu_ddp", "deepspeed_zero2"])
    p.add_argument("--config", default="recipes/configs/sentiment_minilm_lora.yaml")
    p.add_argument("--max_train_samples", type=int, default=2000)
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--global_batch", type=int, default=32)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=recipe)
    sc = sub.add_parser("scaling")
    sc.add_argument("--world", type=int, default=8)
    sc.set_defaults(func=scaling)
    a = sub.add_parser("aborts")
    a.add_argument("--config", default="accelerate_configs/deepspeed_zero3.yaml")
    a.add_argument("--runs", type=int, default=20)
    a.add_argument("--shutdown", nargs="+", default=["plain", "clean"], choices=["none", "plain", "clean"])
    a.add_argument("--timeout", type=float, default=600)
    a.set_defaults(func=aborts)
    for s in (p, a):
        s.add_argument("--work", default=tempfile.mkdtemp(prefix="nlp_transfer_dist_"))
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
