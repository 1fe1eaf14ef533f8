"""What multi-process training needs beyond Accelerate, so that no launch mode degrades silently.

Why: on a machine without GPUs Accelerate 1.15 quietly falls back in several modes (docs/scaling.md):
DeepSpeed runs a 2-rank engine while Accelerate believes in one process (no data sharding, every
rank "main"), FSDP becomes plain DDP, `--cpu --num_processes 2` starts one process and
`--multi_gpu` without GPUs starts two processes that both think they are rank 0. Each of these
trains, writes files and reports metrics; nothing looks wrong. This module

- repairs what can be repaired inside a rank, before the Accelerator exists (`before_accelerator`);
- stops with `LaunchError` when the state still differs from what the launch asked for
  (`check_launch`): the launcher's `NLP_TRANSFER_EXPECTED_*` variables, or `WORLD_SIZE` and the
  `ACCELERATE_USE_*` flags that `accelerate launch` / torchrun set;
- moves the trainable weights between their sharded form and full tensors on the main process,
  for the best-weight snapshot (`gather_trainable`, `scatter_trainable`): under ZeRO-3 and FSDP a
  rank holds only a slice (or an empty placeholder) of each parameter;
- lets ranks agree on the loop's decisions (`from_main`, `all_equal`) so that none waits alone in
  a collective.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, InitProcessGroupKwargs

from nlp_transfer.errors import NLPTransferError
from nlp_transfer.launch import EXPECTED_MODE, EXPECTED_PROCESSES

LAUNCH_HINT = "launch with: nlp-transfer launch --config_file accelerate_configs/<mode>.yaml SCRIPT ... (see docs/scaling.md)"


class LaunchError(NLPTransferError, RuntimeError):
    """The processes that came up are not the distributed run the launch asked for."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _world_size_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def before_accelerator(max_grad_norm: float) -> list[Any]:
    """Fix the state for DeepSpeed/FSDP on CPU; returns kwargs handlers for `Accelerator(...)`.

    Must run before anything creates accelerate's `PartialState` (a process-wide singleton).
    """
    handlers: list[Any] = []
    no_gpu = not torch.cuda.is_available()
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        # Accelerate fills DeepSpeed's "auto" clipping with 1.0; the run config's value is the truth.
        os.environ.setdefault("ACCELERATE_GRADIENT_CLIPPING", str(float(max_grad_norm)))
        if no_gpu and _world_size_env() > 1:
            # Without a backend Accelerate forces num_processes=1 while DeepSpeed's group has 2 ranks.
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
    elif _flag("ACCELERATE_USE_FSDP") and no_gpu and _world_size_env() > 1:
        # Accelerate only turns FSDP on over a MULTI_GPU-like state; on CPU it would become DDP.
        # A gloo (MULTI_CPU) state relabelled MULTI_GPU gives real FSDP2 sharding over gloo.
        from accelerate.state import PartialState

        state = PartialState(cpu=True)
        if state.distributed_type == DistributedType.MULTI_CPU:
            PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
    return handlers


def expected() -> tuple[int | None, str | None, str]:
    """(processes, distributed type, where that expectation came from) for this launch."""
    if EXPECTED_PROCESSES in os.environ:
        return int(os.environ[EXPECTED_PROCESSES]), os.environ.get(EXPECTED_MODE) or None, "nlp-transfer launch"
    mode = "DEEPSPEED" if _flag("ACCELERATE_USE_DEEPSPEED") else "FSDP" if _flag("ACCELERATE_USE_FSDP") else None
    if "WORLD_SIZE" in os.environ:
        return _world_size_env(), mode, "WORLD_SIZE set by the launcher"
    if "MASTER_ADDR" in os.environ and "ACCELERATE_MIXED_PRECISION" in os.environ:
        # accelerate's single-process launcher sets MASTER_ADDR only when it was asked for more
        # than one process (e.g. `--cpu --num_processes 2`, or a MULTI_CPU config without mpirun).
        return None, mode, "accelerate launch asked for several processes but started this one alone"
    return 1, mode, "a plain single-process start"


def check_launch(accelerator: Accelerator, grad_accum: int) -> None:
    """Raise LaunchError unless world size, distributed type and accumulation are what was asked."""
    want_n, want_mode, source = expected()
    got_n, got_mode = accelerator.num_processes, accelerator.distributed_type.value
    problems = []
    if want_n is None:
        problems.append(f"{source} (a known Accelerate fallback on CPU)")
    elif got_n != want_n:
        problems.append(f"{want_n} processes expected ({source}) but Accelerate sees {got_n}")
    if want_mode is not None and got_mode != want_mode:
        problems.append(f"distributed type {want_mode} expected ({source}) but Accelerate runs {got_mode}")
    if got_mode == "FSDP" and not accelerator.is_fsdp2:
        problems.append("FSDP1 is not supported (best-weight snapshots need FSDP2 DTensors): set fsdp_version: 2")
    if accelerator.gradient_accumulation_steps != grad_accum:
        problems.append(
            f"grad_accum {grad_accum} in the run config but {accelerator.gradient_accumulation_steps} in Accelerate "
            "(ACCELERATE_GRADIENT_ACCUMULATION_STEPS or the launch config overrides it; remove it there)"
        )
    if problems:
        raise LaunchError("this is not the distributed run that was asked for: " + "; ".join(problems) + f". {LAUNCH_HINT}")


def describe(accelerator: Accelerator) -> str:
    """One log line: what is really running (printed by the main process at start)."""
    zero = ""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        zero = f" ZeRO-{accelerator.state.deepspeed_plugin.zero_stage}"
    return f"{accelerator.distributed_type.value}{zero}, {accelerator.num_processes} process(es), device {accelerator.device}"


# --- weights: sharded <-> full ----------------------------------------------------------------


def _trainable(accelerator: Accelerator, model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable parameters, each in its sharded form.

    FSDP2 leaves a unit unsharded after its forward when it does not reshard (the root unit: head,
    pooler, small embeddings): its parameters are then plain full tensors whose writes a later
    reshard would drop. Resharding first makes every parameter its DTensor, the source of truth.
    """
    if accelerator.distributed_type == DistributedType.FSDP:
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()
    return [(n, p) for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad]


def _is_zero3(p: torch.Tensor) -> bool:
    return hasattr(p, "ds_id")


def _is_dtensor(p: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)


def gather_trainable(accelerator: Accelerator, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full CPU copies of the trainable weights on the main process, {} on the others.

    A collective under ZeRO-3 and FSDP: every rank must call it. One parameter at a time, so the
    peak is one full parameter per rank rather than the whole model.
    """
    out: dict[str, torch.Tensor] = {}
    keep = accelerator.is_main_process
    for name, p in _trainable(accelerator, model):
        if _is_zero3(p):
            import deepspeed

            with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
                if keep:
                    out[name] = p.detach().to("cpu", copy=True).contiguous()
        elif _is_dtensor(p):
            full = p.detach().full_tensor()
            if keep:
                out[name] = full.to("cpu", copy=True).contiguous()
        elif keep:
            out[name] = p.detach().to("cpu", copy=True).contiguous()
    return out


def scatter_trainable(accelerator: Accelerator, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load full weights held by the main process into every rank's (possibly sharded) parameters.

    A collective in every multi-process mode; only the main process's `state` is read.
    """
    multi = accelerator.num_processes > 1
    main = accelerator.is_main_process
    with torch.no_grad():
        for name, p in _trainable(accelerator, model):
            if main and name not in state:
                raise KeyError(f"best-weight snapshot lacks {name}")
            if _is_zero3(p):
                import deepspeed

                # DeepSpeed broadcasts the modifier rank's full value and re-partitions on exit.
                with deepspeed.zero.GatheredParameters([p], modifier_rank=0):
                    if main:
                        p.copy_(state[name].to(p.device, p.dtype))
            elif _is_dtensor(p):
                from torch.distributed.tensor import distribute_tensor

                full = state[name].to(p.device, p.dtype) if main else torch.empty(p.shape, dtype=p.dtype, device=p.device)
                shard = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=0)
                p.to_local().copy_(shard.to_local())
            else:
                if main:
                    p.copy_(state[name].to(p.device, p.dtype))
                if multi:
                    torch.distributed.broadcast(p.data, src=0)


# --- agreement between ranks --------------------------------------------------------------------


def from_main(accelerator: Accelerator, *flags: bool) -> tuple[bool, ...]:
    """The main process's values of `flags`, on every rank: one decision, taken once."""
    if accelerator.num_processes == 1:
        return flags
    t = torch.tensor([int(f) for f in flags], device=accelerator.device)
    torch.distributed.broadcast(t, src=0)
    return tuple(bool(v) for v in t.tolist())


def all_equal(accelerator: Accelerator, value: int) -> bool:
    """True on every rank when every rank passed the same integer (a collective)."""
    if accelerator.num_processes == 1:
        return True
    values = accelerator.gather(torch.tensor([value], device=accelerator.device))
    return bool((values == values[0]).all())


def shutdown(accelerator: Accelerator) -> None:
    """Barrier, then destroy the process group: no rank tears down while another still talks."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        accelerator.wait_for_everyone()
        torch.distributed.destroy_process_group()
