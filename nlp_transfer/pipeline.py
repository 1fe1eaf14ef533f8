"""config -> catalog -> data -> task -> method -> loop -> export, shared by every training recipe.

Everything that can fail on bad input (config, data, model name, method options) runs before the
output directory is touched, so a typo never leaves a half-written run behind.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType, set_seed
from torch.utils.data import DataLoader
from transformers import get_scheduler

from nlp_transfer import catalog, export
from nlp_transfer.config import to_dict
from nlp_transfer.data.batching import EpochSampler
from nlp_transfer.diagnostics import run_warnings
from nlp_transfer.errors import ConfigError
from nlp_transfer.methods import feature_cache, get_method
from nlp_transfer.rundir import RunDir
from nlp_transfer.tasks import get_task
from nlp_transfer.tasks.base import Task
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.training import checkpoint, cpu_speed
from nlp_transfer.training.accelerator import make_accelerator
from nlp_transfer.training.bf16_weights import Bf16ComputeModel
from nlp_transfer.training.checkpoint import LoopState
from nlp_transfer.training.loop import fit, total_steps

logger = logging.getLogger("nlp_transfer")
PLAIN = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)


def check_output_dir(cfg: TrainConfig) -> Path:
    """Refuse to clobber a finished run or silently restart over checkpoints (nothing is written)."""
    out = Path(cfg.output_dir)
    if cfg.resume or cfg.overwrite_output_dir or not out.exists():
        return out
    if RunDir(out).is_finished():
        raise ConfigError(
            f"{out} already holds a finished run; pick another output_dir or pass --overwrite_output_dir"
        )
    if checkpoint.checkpoint_dirs(RunDir(out).checkpoints_dir):
        raise ConfigError(
            f"{out} holds checkpoints of an unfinished run; pass --resume to continue it or --overwrite_output_dir"
        )
    return out


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _loader(ds: Any, collate: Any, batch_size: int, cfg: TrainConfig, sampler: Any = None) -> DataLoader:
    # Its own generator: starting an iterator then draws from it, not from the global RNG that
    # drives dropout, so a resumed run (which starts one extra iterator) sees the same dropout masks.
    generator = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.num_workers,
        generator=generator,
    )


def run(
    cfg: TrainConfig, on_step: Callable[[LoopState], None] | None = None, task: Task | None = None
) -> dict[str, Any]:
    """Train, evaluate and export one run; returns its metrics (also in output_dir/metrics.json).

    `task`: a ready task object instead of `get_task(cfg.task)`, for recipes whose task adds to a
    built-in one (domain adaptation, distillation, multi-task, the transfer report).
    """
    with RunDir(cfg.output_dir).writer_lock():  # one writer per output_dir while the run writes it
        stages = Stages(cfg, on_step)
        stages.inputs(task)
        stages.model()
        stages.method()
        stages.data()
        stages.optimiser()
        stages.train()
        return stages.finalise()


class Stages:
    """One run, stage by stage; each stage reads what the earlier ones left on `self`.

    inputs -> model -> method -> data -> optimiser -> train -> finalise. `inputs` does everything that
    can fail on bad input (output_dir, Hub token, method and task names, data, model name, tokenizer)
    before anything is written. The order is also the RNG order: the seed is set right before the model
    is built, so the new head and then the adapter initialise from it.
    """

    def __init__(self, cfg: TrainConfig, on_step: Callable[[LoopState], None] | None = None) -> None:
        self.cfg, self.on_step = cfg, on_step

    def inputs(self, task: Task | None = None) -> None:
        cfg = self.cfg
        self.output_dir = check_output_dir(cfg)
        if cfg.push_to_hub:
            from nlp_transfer.hub import _resolve_token

            _resolve_token(None)  # no token: say so now, not after the training
        self.transfer_method = get_method(cfg.method)
        if cfg.init not in ("pretrained", "scratch"):
            raise ConfigError(f"init must be pretrained or scratch, not {cfg.init!r}")
        self.task = task if task is not None else get_task(cfg.task)(cfg)
        self.raw_data = self.task.load_data()
        self.resolved = catalog.resolve_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
        self.tokenizer = catalog.load_tokenizer(self.resolved, trust_remote_code=cfg.trust_remote_code)

    def model(self) -> None:
        """The accelerator, then the task's model (seeded), or the same architecture from scratch."""
        cfg = self.cfg
        self.accelerator = make_accelerator(cfg, self.output_dir)
        if self.accelerator.device.type == "cpu":
            cpu_speed.keep_freed_memory()
        set_seed(cfg.seed)  # before the model: the new head and the adapter initialise from it
        model = self.task.build_model(self.resolved, self.tokenizer)
        if cfg.init == "scratch":  # same architecture and tokenizer, fresh random weights (seeded above)
            model = type(model)(model.config)
        self.fingerprint = export.base_fingerprint(model.config)
        self.base = model

    def method(self) -> None:
        """Which weights train (the method), plus the task's wrapper adding a loss term, if any."""
        cfg, accelerator = self.cfg, self.accelerator
        prepared = self.transfer_method.prepare(
            self.base,
            dict(cfg.method_args),
            task=self.task.peft_task,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
        self.prepared = prepared = self.task.wrap_prepared(prepared)
        self.trained = prepared.model  # what trains, is evaluated on test and is exported
        self.n_trainable, self.n_total = export.count_parameters(self.trained)
        self.plain = accelerator.distributed_type in PLAIN  # not DeepSpeed/FSDP
        if self.plain and prepared.is_peft and accelerator.mixed_precision == "bf16":
            n = cpu_speed.store_frozen_linears(self.trained, torch.bfloat16)
            logger.debug("%d frozen linear layers stored in bf16 (autocast would cast them every step)", n)
        if accelerator.is_main_process:
            for note in prepared.notes:
                logger.info(note)
            logger.info(
                "trainable parameters: %s of %s (%.2f%%)",
                f"{self.n_trainable:,}",
                f"{self.n_total:,}",
                100 * self.n_trainable / self.n_total,
            )
            logger.info("data: %s", ", ".join(f"{k} {len(v):,}" for k, v in self.raw_data.items()))

    def data(self) -> None:
        """Tokenized splits, the training sampler and loaders; frozen: cached encoder features."""
        cfg, task, accelerator = self.cfg, self.task, self.accelerator
        with accelerator.main_process_first():
            self.encoded = encoded = task.tokenize(self.raw_data, self.tokenizer)
        collate = task.collator(self.tokenizer)
        self.lengths = [len(ids) for ids in encoded["train"]["input_ids"]]
        self.sampler = task.train_sampler(encoded["train"])
        if self.sampler is None:  # the default: seeded, length-grouped batches
            self.sampler = EpochSampler(self.lengths, cfg.batch_size, cfg.seed, cfg.group_by_length)
        self.train_loader = _loader(encoded["train"], collate, cfg.batch_size, cfg, self.sampler)
        self.eval_loaders = {
            s: _loader(encoded[s], collate, cfg.eval_batch_size, cfg)
            for s in ("validation", "test")
            if s in encoded
        }
        self.fitted, self.cache_s = self.trained, None  # fitted: what the loop steps (may be a stand-in)
        if cfg.method == "frozen" and cfg.cache_features and task.feature_cache_ok:
            self.fitted, self.train_loader, self.cache_s = _cache_features(
                cfg,
                accelerator,
                self.trained,
                encoded,
                collate,
                self.sampler,
                self.train_loader,
                self.eval_loaders,
            )

    def optimiser(self) -> None:
        """AdamW and the LR schedule; bf16 compute copy on one CPU; everything through accelerator.prepare."""
        cfg, accelerator, prepared = self.cfg, self.accelerator, self.prepared
        self.compute_copy = (
            cfg.bf16_weights
            and self.cache_s is None
            and not prepared.is_peft
            and self.task.compute_copy_ok
            and accelerator.mixed_precision == "bf16"
            and accelerator.distributed_type == DistributedType.NO
            and accelerator.device.type == "cpu"
        )
        # DeepSpeed/FSDP bring their own optimizer handling: fused AdamW only for plain runs
        optimizer = cpu_speed.adamw(prepared.param_groups, cfg.lr, fused=self.plain)
        fitted = self.fitted
        if self.compute_copy:  # the optimizer keeps stepping the fp32 weights in prepared.param_groups
            fitted = Bf16ComputeModel(fitted)
            fitted.watch(optimizer)
            logger.info(
                "bf16: the model computes in bf16 over fp32 master weights (bf16_weights: false for autocast)"
            )
        steps = total_steps(cfg, -(-len(self.train_loader) // accelerator.num_processes))
        self.scheduler = get_scheduler(
            cfg.lr_schedule,
            optimizer,
            num_warmup_steps=int(cfg.warmup_ratio * steps),
            num_training_steps=steps,
        )
        self.fitted, self.optimizer, self.train_loader, *eval_list = accelerator.prepare(
            fitted, optimizer, self.train_loader, *self.eval_loaders.values()
        )
        self.eval_loaders = dict(zip(self.eval_loaders, eval_list, strict=True))
        accelerator.register_for_checkpointing(self.scheduler)

    def train(self) -> None:
        """Clear an overwritten run, start the trackers, the task's pre-training hook, then the loop."""
        cfg, task, accelerator, output_dir = self.cfg, self.task, self.accelerator, self.output_dir
        if (
            cfg.overwrite_output_dir
            and not cfg.resume
            and accelerator.is_main_process
            and output_dir.exists()
        ):
            RunDir(output_dir).clear()  # keeps the lock file this run holds
        accelerator.wait_for_everyone()
        self.config_dict = to_dict(cfg)
        if cfg.report_to != "none":
            accelerator.init_trackers(
                "train",
                config={k: v for k, v in self.config_dict.items() if isinstance(v, (int, float, str, bool))},
            )
        model, eval_loaders = self.fitted, self.eval_loaders
        task.before_training(accelerator, model, eval_loaders)
        self.state, self.stats = fit(
            cfg, accelerator, model, self.optimizer, self.scheduler, self.train_loader, self.sampler,
            lambda: task.evaluate(accelerator, model, eval_loaders["validation"], "validation"),
            output_dir, self.on_step,
        )  # fmt: skip

    def finalise(self) -> dict[str, Any]:
        """Test metrics on the trained model, warnings, nlp_transfer.json, extra files, export, push."""
        cfg, task, accelerator, state, stats = self.cfg, self.task, self.accelerator, self.state, self.stats
        model = self.fitted
        if (
            self.cache_s is not None
        ):  # the head trained on cached features: count the encoder pass as training
            stats.train_time_s += self.cache_s
            stats.tokens = int(sum(self.lengths) * stats.epochs)
            model = self.trained  # test metrics and export: the whole model, on real text
        if self.compute_copy:
            model = self.trained  # the fp32 master weights: test metrics under autocast, and the export
        model.eval()
        metrics: dict[str, Any] = {"validation": state.history[-1] if state.history else {}}
        metrics["best"] = {"step": state.best_step, cfg.metric_for_best: state.best_metric}
        if "test" in self.eval_loaders:
            start = time.perf_counter()
            with accelerator.autocast():
                metrics["test"] = task.evaluate(accelerator, model, self.eval_loaders["test"], "test")
            metrics["test"]["eval_time_s"] = time.perf_counter() - start
        metrics["train"] = {
            "train_time_s": round(stats.train_time_s, 2),
            "samples_per_s": round(stats.samples_per_s, 2),
            "tokens_per_s": round(stats.tokens / stats.train_time_s, 1) if stats.train_time_s else 0.0,
            "examples": len(self.encoded["train"]),
            "samples": stats.samples,
            "steps": stats.steps,
            "epochs": stats.epochs,
            "stopped_early": state.stopped_early,
            "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "feature_cache_s": None if self.cache_s is None else round(self.cache_s, 2),
        }
        metrics["trainable_params"], metrics["total_params"] = self.n_trainable, self.n_total
        metrics["peak_memory_mb"] = round(peak_memory_mb(), 1)
        metrics["history"] = state.history
        metrics["warnings"] = run_warnings(metrics, task.metadata().get("labels"))
        if accelerator.is_main_process:
            for warning in metrics["warnings"]:
                logger.warning(warning)
        meta = {
            "task": task.name,
            "method": cfg.method,
            "is_peft": self.prepared.is_peft,
            "base_model": cfg.model,
            "base_model_hub_id": self.resolved.hub_id,
            "base_fingerprint": self.fingerprint,
            "dataset": cfg.dataset,
            "trainable_params": self.n_trainable,
            "total_params": self.n_total,
            **task.metadata(),
        }
        if accelerator.is_main_process:
            for name, text in task.extra_files().items():  # e.g. samples.jsonl
                self.output_dir.mkdir(parents=True, exist_ok=True)
                (self.output_dir / name).write_text(text)
        export.export(accelerator, model, self.tokenizer, self.output_dir, meta, self.config_dict, metrics)
        accelerator.end_training()
        if cfg.push_to_hub and accelerator.is_main_process:
            push_run(self.output_dir, cfg)
        return metrics


def _cache_features(
    cfg: TrainConfig,
    accelerator: Any,
    model: torch.nn.Module,
    encoded: Any,
    collate: Any,
    sampler: Any,
    train_loader: DataLoader,
    eval_loaders: dict[str, DataLoader],
) -> tuple[torch.nn.Module, DataLoader, float | None]:
    """frozen: encode train/validation once; returns (head to train, its loader, seconds spent on train)."""
    reason = feature_cache.unsupported_reason(model, accelerator.num_processes)
    if reason is not None:
        logger.info("feature caching off (%s): the frozen encoder runs on every batch", reason)
        return model, train_loader, None
    start = time.perf_counter()
    train = feature_cache.encode(
        accelerator, model, _loader(encoded["train"], collate, cfg.eval_batch_size, cfg), "train"
    )
    cache_s = time.perf_counter() - start
    if "validation" in eval_loaders:
        eval_loaders["validation"] = _loader(
            feature_cache.encode(accelerator, model, eval_loaders["validation"], "validation"),
            None,
            cfg.eval_batch_size,
            cfg,
        )
    logger.info("frozen: encoder features cached in %.1f s; the head trains on them", cache_s)
    return feature_cache.CachedFeatureHead(model), _loader(train, None, cfg.batch_size, cfg, sampler), cache_s


def push_run(output_dir: Path, cfg: TrainConfig) -> None:
    from nlp_transfer.hub import HubError, push

    try:
        url = push(output_dir, cfg.hub_repo_id, private=cfg.hub_private)
    except HubError as e:
        raise HubError(
            f"{e} (the run is saved in {output_dir}; retry with: nlp-transfer push {output_dir} --repo-id {cfg.hub_repo_id})"
        ) from e
    logger.info("pushed to %s", url)
