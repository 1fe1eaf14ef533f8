"""Adapters through PEFT: LoRA, DoRA, IA3, LoHa, LoKr and any other PEFT type as `peft:<type>`.

`method_args` go straight into PEFT's own config dataclass (so PEFT's docs are the reference for
every key); we only add defaults that PEFT leaves to the user: which modules to adapt for common
architectures, and LoRA's rank/alpha/dropout. The task head is trained and saved with the adapter
(PEFT's `modules_to_save`), since a LoRA sentiment adapter without its classifier is useless.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import peft
import torch
from peft import PeftType, TaskType, get_peft_model

from nlp_transfer.config import closest
from nlp_transfer.errors import ConfigError
from nlp_transfer.methods.registry import Method, Prepared, decay_groups, register, register_family, trainable

TASK_TYPES = {
    "classification": TaskType.SEQ_CLS,
    "causal_lm": TaskType.CAUSAL_LM,
    "seq2seq_lm": TaskType.SEQ_2_SEQ_LM,
    "masked_lm": None,
    "features": TaskType.FEATURE_EXTRACTION,
}
HEADS = {"classification": ["classifier", "score"], "masked_lm": ["cls"]}

# Adapting every projection in attention and MLP tracks full fine-tuning more closely than PEFT's
# query/value default, for a few thousand more parameters.
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "electra": ["query", "key", "value", "dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "t5": ["q", "k", "v", "o"],
    "bart": ["q_proj", "k_proj", "v_proj", "out_proj"],
}
# No LoRA dropout (PEFT's own default): on CPU each dropout draws a random mask per input element,
# which cost MiniLM LoRA more time than its matrix products (473 -> 309 ms per step of 32 reviews).
LORA_DEFAULTS = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}


def _config_class(peft_type: str) -> type:
    try:
        return peft.PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[peft_type.upper()]]
    except KeyError as e:
        names = [t.value.lower() for t in PeftType]
        raise ConfigError(f"PEFT has no method {peft_type!r}{closest(peft_type.lower(), names)}") from e


def adaptable_module_names(model: torch.nn.Module) -> list[str]:
    """Short names of the linear layers an adapter could target, for error messages."""
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Embedding)
    names = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, kinds) or type(m).__name__ == "Conv1D"
    }
    return sorted(names)


def _defaults(peft_type: str, model_type: str) -> dict[str, Any]:
    if peft_type in ("lora", "loha", "lokr", "adalora") and model_type in LORA_TARGETS:
        out: dict[str, Any] = {"target_modules": LORA_TARGETS[model_type]}
        return {**LORA_DEFAULTS, **out} if peft_type == "lora" else out
    if peft_type == "lora":
        return dict(LORA_DEFAULTS)
    return {}


def build_config(
    peft_type: str, args: dict[str, Any], *, task: str, model: torch.nn.Module
) -> peft.PeftConfig:
    config_cls = _config_class(peft_type)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for key in args:
        if key not in fields:
            raise ConfigError(f"{config_cls.__name__} has no option {key!r}{closest(key, sorted(fields))}")
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    kwargs = {**_defaults(peft_type, model_type), **args}
    task_type = TASK_TYPES.get(task)
    if task_type is not None:
        kwargs["task_type"] = task_type
    if task in HEADS and "modules_to_save" in fields and kwargs.get("modules_to_save") is None:
        present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        kwargs["modules_to_save"] = [h for h in HEADS[task] if h in present] or None
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid {config_cls.__name__} options {args}: {e}") from e


def check_targets(model: torch.nn.Module, config: peft.PeftConfig) -> None:
    """Name missing target modules and the real ones, before PEFT's generic 'no modules targeted'."""
    wanted = getattr(config, "target_modules", None)
    if not isinstance(wanted, (list, set, tuple)):
        return
    names = [n for n, _ in model.named_modules()]
    missing = sorted(t for t in wanted if not any(n == t or n.endswith("." + t) for n in names))
    if missing:
        raise ConfigError(
            f"target_modules {missing} not found in {type(model).__name__}; "
            f"its adaptable modules are: {', '.join(adaptable_module_names(model))}"
        )


def apply(model: torch.nn.Module, config: peft.PeftConfig) -> torch.nn.Module:
    check_targets(model, config)
    try:
        return get_peft_model(model, config)
    except (ValueError, TypeError) as e:  # TypeError: e.g. LoHa/LoKr on GPT-2's Conv1D layers
        raise ConfigError(
            f"{type(config).__name__} cannot adapt {type(model).__name__}: {str(e).splitlines()[0]}"
        ) from e


def _peft_method(name: str, peft_type: str, extra: dict[str, Any], help: str) -> Method:
    def prepare(model: torch.nn.Module, args: dict, *, task: str, lr: float, weight_decay: float) -> Prepared:
        config = build_config(peft_type, {**extra, **args}, task=task, model=model)
        adapted = apply(model, config)
        notes = [
            f"{name}: {type(config).__name__}"
            + (f" on {sorted(config.target_modules)}" if getattr(config, "target_modules", None) else "")
        ]
        return Prepared(
            adapted, decay_groups(trainable(adapted), lr, weight_decay), is_peft=True, notes=notes
        )

    return Method(name, help, prepare, is_peft=True)


def generic_peft(peft_type: str) -> Method:
    _config_class(peft_type)
    return _peft_method(f"peft:{peft_type}", peft_type.lower(), {}, f"PEFT {peft_type}")


register_family("peft:", generic_peft)
register(
    _peft_method(
        "lora", "lora", {}, "LoRA adapter + trained head, {r: 8, lora_alpha: 16, target_modules: ...}"
    )
)
register(_peft_method("dora", "lora", {"use_dora": True}, "weight-decomposed LoRA (DoRA): LoRA options"))
register(_peft_method("ia3", "ia3", {}, "IA3: learned rescaling vectors, fewest parameters"))
register(_peft_method("loha", "loha", {}, "LoHa: Hadamard-product low-rank adapter"))
register(_peft_method("lokr", "lokr", {}, "LoKr: Kronecker-product low-rank adapter"))
