"""The training loop every recipe shares (Accelerate: one CPU, DDP, DeepSpeed or FSDP alike).

It knows nothing of tasks or data sources: it gets a prepared model, optimizer, scheduler, a
dataloader whose order depends only on (seed, epoch), and an `evaluate()` that returns validation
metrics (identical on every rank, because they come from gathered predictions). That is enough for
accumulation, periodic evaluation, best-weight selection, early stopping and exact resume (replay
the epoch's order, skip what was done).

With several processes every rank runs this same code: each trains on its own shard (Accelerate's
sharded loader), the keep-best and stop decisions are the main process's (broadcast, so no rank is
left alone in a collective), the best-weight snapshot is gathered from ZeRO-3/FSDP shards to the
main process and scattered back at the end, and only the main process writes (checkpoint.py).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from nlp_transfer.errors import ConfigError
from nlp_transfer.rundir import CHECKPOINTS_DIR
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.training import checkpoint, distributed, events
from nlp_transfer.training.checkpoint import LoopState

logger = logging.getLogger(__name__)
EvalFn = Callable[[], dict[str, float]]
# Exit code of a run stopped by SIGTERM after writing a checkpoint (EX_TEMPFAIL: "try again").
# The service sends SIGTERM to drain or cancel; `--resume` continues from that checkpoint.
TERMINATED_EXIT_CODE = 75


class _TermFlag:
    """SIGTERM sets a flag; the loop checkpoints at the next optimizer step and exits.

    Why not exit in the handler: a checkpoint is only consistent between optimizer steps, and under
    several processes every rank must stop at the same step (the main process's flag decides).
    """

    def __init__(self) -> None:
        self.set = False
        self.previous: object = None
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, _signum: int, _frame: object) -> None:
        self.set = True

    def restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)  # type: ignore[arg-type]


@dataclass
class TrainStats:
    train_time_s: float
    samples: int  # examples trained on, all processes
    tokens: int  # real (non-pad) tokens trained on, all processes
    steps: int
    epochs: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_time_s if self.train_time_s else 0.0


def total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * math.ceil(batches_per_epoch / cfg.grad_accum)))


def trainable_state(accelerator: Accelerator, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights that train: the best-so-far snapshot, cheap for adapters.

    Full tensors on the main process ({} on the others), gathered from ZeRO-3 / FSDP shards: a
    collective, so every rank calls it. Costs one fp32 copy of the trainable weights in CPU RAM.
    """
    return distributed.gather_trainable(accelerator, model)


def restore_trainable(
    accelerator: Accelerator, model: torch.nn.Module, state: dict[str, torch.Tensor]
) -> None:
    """Put the main process's snapshot back into every rank's (possibly sharded) weights; a collective."""
    distributed.scatter_trainable(accelerator, model, state)


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric.endswith("loss") else value > best


def fit(
    cfg: TrainConfig,
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    train_loader: torch.utils.data.DataLoader,
    sampler: torch.utils.data.Sampler,
    evaluate: EvalFn,
    output_dir: Path,
    on_step: Callable[[LoopState], None] | None = None,
) -> tuple[LoopState, TrainStats]:
    """Train until max steps/epochs or early stop; leaves the best weights in `model`.

    The SIGTERM flag is installed for the loop only and always put back, so an in-process caller
    (a test, a notebook) whose run raised keeps its own SIGTERM handling.
    """
    term = _TermFlag()
    try:
        return _fit(
            cfg,
            accelerator,
            model,
            optimizer,
            scheduler,
            train_loader,
            sampler,
            evaluate,
            output_dir,
            on_step,
            term,
        )
    finally:
        term.restore()


def _fit(
    cfg: TrainConfig,
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    train_loader: torch.utils.data.DataLoader,
    sampler: torch.utils.data.Sampler,
    evaluate: EvalFn,
    output_dir: Path,
    on_step: Callable[[LoopState], None] | None,
    term: _TermFlag,
) -> tuple[LoopState, TrainStats]:
    ckpt_root = output_dir / CHECKPOINTS_DIR
    steps = total_steps(cfg, len(train_loader))
    state, best = LoopState(), None
    if cfg.resume:
        loaded = checkpoint.load_latest(accelerator, ckpt_root)
        if loaded is None:
            logger.warning("resume: no checkpoint in %s, starting from scratch", ckpt_root)
        else:
            state, best = loaded
            accelerator.step = 0  # checkpoints sit on optimizer-step boundaries
            logger.info(
                "resumed at step %d (epoch %d, batch %d)", state.step, state.epoch, state.batches_in_epoch
            )

    if accelerator.is_main_process:
        events.emit(
            "start", step=state.step, total_steps=steps, resumed_from_step=state.step if cfg.resume else None
        )
    bar = tqdm(
        total=steps,
        initial=state.step,
        disable=not accelerator.is_local_main_process,
        desc="train",
        unit="step",
    )
    samples = tokens = 0
    loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0
    train_time, started = 0.0, time.perf_counter()

    def run_eval() -> bool:
        """Evaluate, keep the best weights, maybe checkpoint; True when early stopping says stop."""
        nonlocal best, train_time, started
        train_time += time.perf_counter() - started
        model.eval()
        metrics = evaluate()
        model.train()
        if cfg.metric_for_best not in metrics:
            raise ConfigError(
                f"metric_for_best {cfg.metric_for_best!r} is not among the validation metrics: {', '.join(sorted(metrics))}"
            )
        value = metrics[cfg.metric_for_best]
        state.history.append(
            {
                "step": state.step,
                "epoch": state.epoch,
                **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            }
        )
        accelerator.log(
            {f"validation/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=state.step
        )
        # Metrics come from gathered predictions, so every rank should decide alike; taking the main
        # process's decision makes sure (a rank alone in the snapshot's gather would hang).
        (improved,) = distributed.from_main(
            accelerator, _improved(cfg.metric_for_best, value, state.best_metric)
        )
        if improved:
            state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
            best = trainable_state(accelerator, model)
        else:
            state.evals_without_improvement += 1
        logger.info(
            "step %d: validation %s = %.4f (best %.4f at step %d)",
            state.step,
            cfg.metric_for_best,
            value,
            state.best_metric,
            state.best_step,
        )
        if accelerator.is_main_process:
            events.emit(
                "eval",
                step=state.step,
                metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            )
        (stop,) = distributed.from_main(
            accelerator, 0 < cfg.early_stopping_patience <= state.evals_without_improvement
        )
        if stop:
            state.stopped_early = True
            logger.info("early stopping: no improvement in %d evaluations", state.evals_without_improvement)
        if cfg.save_every == 0 and not stop:
            save()
        started = time.perf_counter()
        return stop

    def save() -> None:
        checkpoint.save(accelerator, ckpt_root, state, cfg.keep_checkpoints, best)
        if accelerator.is_main_process:
            events.emit("checkpoint", step=state.step)

    model.train()
    done = state.step >= steps or state.stopped_early
    while not done:
        loader = train_loader
        if state.batches_in_epoch:
            loader = accelerator.skip_first_batches(train_loader, state.batches_in_epoch)
        # Accelerate's loaders re-set the sampler's epoch from their own counter when iterated,
        # and a fresh skip-loader's counter starts at 0: set both, or a resumed epoch replays epoch 0.
        for obj in (loader, sampler):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(state.epoch)
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float()
            loss_count += 1
            samples += int(batch["labels"].shape[0])
            tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
            state.batches_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state.step += 1
            bar.update(1)
            if state.step % cfg.log_every == 0 or state.step == steps:
                mean_loss = accelerator.reduce(loss_sum / max(loss_count, 1), reduction="mean").item()
                loss_sum.zero_()
                loss_count = 0
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                accelerator.log(
                    {"train/loss": mean_loss, "train/lr": scheduler.get_last_lr()[0]}, step=state.step
                )
                if accelerator.is_main_process:
                    events.emit(
                        "step",
                        step=state.step,
                        total_steps=steps,
                        loss=mean_loss,
                        lr=scheduler.get_last_lr()[0],
                    )
            if on_step is not None:
                on_step(state)
            if cfg.eval_every and state.step % cfg.eval_every == 0 and run_eval():
                done = True
                break
            if cfg.save_every and state.step % cfg.save_every == 0:
                save()
            if state.step < steps and distributed.from_main(accelerator, term.set)[0]:
                save()  # SIGTERM (service drain or cancel): keep the work, stop, resume later
                if accelerator.is_main_process:
                    events.emit("interrupted", step=state.step)
                logger.warning("SIGTERM: checkpoint written at step %d; continue with --resume", state.step)
                raise SystemExit(TERMINATED_EXIT_CODE)
            if state.step >= steps:
                done = True
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
            if not cfg.eval_every and run_eval():
                done = True
        if (
            done
            and not state.stopped_early
            and (not state.history or state.history[-1]["step"] != state.step)
        ):
            run_eval()  # the last steps were never evaluated: they may hold the best weights
    bar.close()
    train_time += time.perf_counter() - started
    if best is not None:
        restore_trainable(accelerator, model, best)
    counts = accelerator.reduce(
        torch.tensor([samples, tokens], device=accelerator.device), reduction="sum"
    ).tolist()
    epochs_done = state.epoch + state.batches_in_epoch / max(len(train_loader), 1)
    return state, TrainStats(train_time, int(counts[0]), int(counts[1]), state.step, round(epochs_done, 3))
