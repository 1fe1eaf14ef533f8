"""The options of a training run. These fields are the YAML keys and the `--flags` of every recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlp_transfer.config import closest, opt
from nlp_transfer.errors import ConfigError
from nlp_transfer.tasks.spec import TASK_NAMES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass
class TrainConfig:
    # what to adapt, to what
    task: str = opt("classification", " | ".join(TASK_NAMES))
    model: str = opt("minilm-l6", "built-in name (minilm-l6, smollm2-135m), local directory or Hub id")
    trust_remote_code: bool = opt(
        False, "run model code from the Hub; off because it executes downloaded code"
    )
    method: str = opt("lora", "full | top_k | frozen | lora | dora | ia3 | ... (see `nlp-transfer methods`)")
    method_args: dict = opt({}, "method options, e.g. {r: 8, lora_alpha: 16} for lora, {k: 2} for top_k")
    init: str = opt(
        "pretrained",
        "pretrained | scratch: scratch keeps the architecture and tokenizer but starts from "
        "random weights, the baseline that shows what pretraining buys",
    )

    # data
    dataset: str = opt(
        "rotten_tomatoes", "built-in name, a csv/jsonl/parquet file, a save_to_disk dir or a Hub id"
    )
    text_column: str = opt("text", "column holding the input text")
    label_column: str = opt("label", "column holding the class label (classification)")
    summary_column: str = opt("summary", "column holding the target summary (summarisation)")
    labels: list[str] | None = opt(
        None, "label names in id order; null = taken from the data (sorted if strings)"
    )
    train_split: str = opt("train", "split to train on")
    validation_split: str | None = opt(
        "validation", "split for evaluation during training; null carves 10% of train"
    )
    test_split: str | None = opt("test", "split for the final report; null skips it")
    max_length: int = opt(
        128, "max tokens per input; Rotten Tomatoes snippets are ~25 tokens, so 128 loses nothing"
    )
    max_train_samples: int | None = opt(
        None, "use only the first N training examples (quick runs, few-label studies)"
    )
    max_eval_samples: int | None = opt(None, "use only the first N validation/test examples")
    group_by_length: bool = opt(True, "batch similar lengths together: less padding, same examples per epoch")
    cache_features: bool = opt(
        True, "frozen method: encode the data once and train the head on cached features (one process, BERT-style heads)"
    )

    # optimisation
    lr: float = opt(5e-4, "peak learning rate; 5e-4 suits LoRA, use ~5e-5 for full fine-tuning")
    weight_decay: float = opt(0.01, "AdamW decoupled weight decay (not applied to biases and norms)")
    epochs: float = opt(2, "passes over the training data (ignored when max_steps > 0)")
    max_steps: int = opt(0, "stop after this many optimizer steps; 0 = use epochs")
    batch_size: int = opt(32, "examples per optimizer step per process, before accumulation")
    eval_batch_size: int = opt(64, "examples per evaluation forward pass")
    grad_accum: int = opt(1, "accumulate gradients over N batches: global batch = batch_size x N x processes")
    warmup_ratio: float = opt(0.06, "fraction of steps spent warming the LR up from 0")
    lr_schedule: str = opt("linear", "linear | cosine | constant | constant_with_warmup")
    max_grad_norm: float = opt(1.0, "clip gradient norm; 0 disables")
    precision: str = opt(
        "auto", "auto | fp32 | bf16 | fp16; auto = bf16 autocast where the CPU/GPU supports it"
    )
    bf16_weights: bool = opt(
        True, "bf16 on one CPU process, full/partial fine-tuning: run the model in bf16 over fp32 master weights "
        "(1.10-1.14x faster steps than autocast on 2 CPU cores); false = plain autocast"
    )
    seed: int = opt(42, "seeds data order, dropout and adapter initialisation")

    # evaluation, checkpoints, logging
    eval_every: int = opt(0, "evaluate every N optimizer steps; 0 = at the end of each epoch")
    metric_for_best: str = opt("macro_f1", "validation metric that picks the best weights (higher is better)")
    early_stopping_patience: int = opt(0, "stop after N evaluations without improvement; 0 = never")
    save_every: int = opt(0, "write a resumable checkpoint every N optimizer steps; 0 = each evaluation")
    keep_checkpoints: int = opt(2, "how many recent checkpoints to keep on disk")
    resume: bool = opt(False, "continue from the latest checkpoint in output_dir")
    output_dir: str = opt("runs/sentiment_minilm_lora", "where the adapter, metrics and checkpoints go")
    overwrite_output_dir: bool = opt(
        False, "allow training into a directory that already holds a finished run"
    )
    log_every: int = opt(20, "log loss and LR every N optimizer steps")
    report_to: str = opt("tensorboard", "tensorboard | none")
    num_workers: int = opt(0, "DataLoader worker processes; 0 keeps the 2-core CPU for compute")

    # sharing
    push_to_hub: bool = opt(False, "upload the finished run (adapter, tokenizer, card, metrics) to the Hub")
    hub_repo_id: str | None = opt(None, "USER/NAME of the Hub repo to push to")
    hub_private: bool = opt(False, "create the Hub repo as private")

    # generation (summarisation)
    max_source_tokens: int = opt(480, "source tokens kept in the prompt; the summary is never cut")
    max_target_tokens: int = opt(96, "summary tokens kept for training")
    max_new_tokens: int = opt(80, "generation cap at evaluation time")
    eval_zero_shot: bool = opt(True, "also score the untrained base model on the test split")
    eval_generate_samples: int = opt(
        32,
        "validation examples summarised for ROUGE at each evaluation during training (the loss uses all; "
        "generation dominates CPU eval time); the test split is always summarised in full; 0 = loss only",
    )
    packing: bool = opt(
        False,
        "summarisation on decoders: concatenate training examples into rows (position ids "
        "restart per example, so they never attend to each other); saves padding on short examples",
    )

    def validate(self) -> None:
        def one_of(key: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(
                    f"{key} must be one of {', '.join(allowed)}, not {value!r}{closest(value, list(allowed))}"
                )

        one_of("task", TASK_NAMES)  # tasks/spec.py: imports only config and errors, no cycle
        one_of("precision", PRECISIONS)
        one_of("lr_schedule", SCHEDULES)
        one_of("report_to", ("tensorboard", "none"))
        positive = ("batch_size", "eval_batch_size", "grad_accum", "max_length", "keep_checkpoints")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, not {self.lr}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if self.push_to_hub and not self.hub_repo_id:
            raise ConfigError("push_to_hub needs hub_repo_id (USER/NAME)")
        if self.eval_generate_samples < 0:
            raise ConfigError(f"eval_generate_samples must be 0 or more, not {self.eval_generate_samples}")
        for key in ("max_train_samples", "max_eval_samples"):
            value: Any = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key} must be at least 1 or null, not {value}")
