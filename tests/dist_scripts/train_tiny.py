"""One training run under whatever launcher started this process, instrumented for the tests.

    python train_tiny.py RECORD_DIR '{"model": ..., "dataset": ..., "output_dir": ..., ...}' [CRASH_AT_STEP]

The second argument is a TrainConfig as JSON (plus `_n_train`, the training split's size). Each
rank writes RECORD_DIR/rank<i>.json with what the tests check and cannot see from outside: the
rank's identity as Accelerate reports it, which training examples it fetched (disjoint shards),
which files it wrote (one writer), and, from the main process, the logits the in-memory (maybe
sharded) model gives on fixed texts just before export (the saved weights must reproduce them).
With CRASH_AT_STEP every rank raises at that optimizer step (a simulated kill), then the same
processes run again with resume=True: attempt 0 is the crashed run, attempt 1 the resumed one.
DIST_TEST_SHUTDOWN=plain restores Accelerate's own end_training (destroy without a barrier),
=none skips destroying the process group: for measuring exit aborts before/after the fix.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SAMPLES = ["the cast was great and moving", "a dull and tedious plot", "really quite charming", "the script was awful"]
RANK = int(os.environ.get("RANK", "0"))
record: dict = {"rank_env": RANK, "attempts": [], "writes": []}
out_dir = ""


def _written(path: object) -> None:
    if isinstance(path, (str, os.PathLike)):
        full = os.path.abspath(os.fsdecode(path))
        if out_dir and full.startswith(out_dir + os.sep):
            record["writes"].append(os.path.relpath(full, out_dir))


def _audit(event: str, args: tuple) -> None:
    """Python-level writes (open for writing, renames, deletions) under the output directory."""
    if event == "open" and len(args) > 2:
        mode, flags = args[1] or "", args[2] or 0
        if any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR):
            _written(args[0])
    elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"):
        _written(args[0])


def _install_write_probes() -> None:
    """Audit hook plus wrappers for the writers that bypass Python's open (C++ / Rust)."""
    sys.addaudithook(_audit)
    import safetensors.torch
    import torch

    def wrap(module: object, name: str, path_arg: int) -> None:
        original = getattr(module, name)

        def recorded(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            _written(args[path_arg] if len(args) > path_arg else kwargs.get("filename", kwargs.get("f")))
            return original(*args, **kwargs)

        setattr(module, name, recorded)

    wrap(torch, "save", 1)
    wrap(safetensors.torch, "save_file", 1)


def _local_numel(p) -> int:  # noqa: ANN001
    """Elements this rank holds of a parameter: its ZeRO-3 partition or FSDP2 shard, else all."""
    if hasattr(p, "ds_tensor"):
        return p.ds_tensor.numel()
    return p.to_local().numel() if hasattr(p, "to_local") else p.numel()


def main() -> int:
    global out_dir
    record_dir, cfg_json = Path(sys.argv[1]), json.loads(sys.argv[2])
    crash_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    out_dir = os.path.abspath(cfg_json["output_dir"])
    _install_write_probes()  # before transformers binds safetensors' save_file

    import datasets
    import torch
    from accelerate import Accelerator

    from nlp_transfer import export, log, pipeline
    from nlp_transfer.errors import NLPTransferError
    from nlp_transfer.train_config import TrainConfig
    from nlp_transfer.training.accelerator import RunAccelerator

    shutdown = os.environ.get("DIST_TEST_SHUTDOWN", "clean")
    if shutdown == "plain":
        RunAccelerator.end_training = Accelerator.end_training
    elif shutdown == "none":
        RunAccelerator.end_training = lambda self: None
    n_train = cfg_json.pop("_n_train")
    original_getitems = datasets.Dataset.__getitems__

    def getitems(self: datasets.Dataset, keys: list) -> list:
        if len(self) == n_train and record["attempts"]:
            record["attempts"][-1]["train_fetches"].append([int(k) for k in keys])
        return original_getitems(self, keys)

    datasets.Dataset.__getitems__ = getitems
    original_export = export.export

    def export_and_record(accelerator, model, tokenizer, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        trainable = [p for p in accelerator.unwrap_model(model).parameters() if p.requires_grad]
        record.update(
            process_index=accelerator.process_index,
            num_processes=accelerator.num_processes,
            distributed_type=accelerator.distributed_type.value,
            is_main=accelerator.is_main_process,
            trainable=len(trainable),
            sharded_trainable=sum(_local_numel(p) < max(p.numel(), getattr(p, "ds_numel", 0)) for p in trainable),
        )
        batch = tokenizer(SAMPLES, padding=True, return_tensors="pt").to(accelerator.device)
        with torch.no_grad():  # a collective under ZeRO-3 / FSDP: every rank runs it
            logits = model(**batch).logits.float().cpu()
        if accelerator.is_main_process:
            record["in_memory_logits"] = logits.tolist()
        return original_export(accelerator, model, tokenizer, *args, **kwargs)

    export.export = export_and_record
    log.setup()

    def crash(state) -> None:  # noqa: ANN001
        if state.step == crash_at:
            raise KeyboardInterrupt(f"simulated kill at step {crash_at}")

    code = 0
    try:
        for attempt in range(2 if crash_at else 1):
            record["attempts"].append({"train_fetches": []})
            cfg = TrainConfig(**cfg_json, resume=attempt > 0)
            cfg.validate()
            try:
                record["attempts"][-1]["metrics"] = pipeline.run(cfg, on_step=crash if crash_at and attempt == 0 else None)
            except KeyboardInterrupt as e:
                record["attempts"][-1]["error"] = str(e)
    except NLPTransferError as e:
        print(f"error: {e}", file=sys.stderr)
        record["error"] = str(e)
        code = 2
    except Exception as e:  # recorded, then re-raised: the traceback still reaches the log
        record["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        record_dir.mkdir(parents=True, exist_ok=True)
        (record_dir / f"rank{RANK}.json").write_text(json.dumps(record, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
