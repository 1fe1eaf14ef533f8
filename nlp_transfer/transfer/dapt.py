"""Domain-adaptive pretraining (DAPT): continue the pretraining objective on unlabelled in-domain text.

Encoders continue masked-LM training (15% of tokens hidden, BERT's 80/10/10 rule), decoders
causal-LM training, on the text concatenated and cut into blocks of `max_length` tokens (no padding
wasted, documents may straddle blocks, as in run_mlm.py). Full or any PEFT method (LoRA) trains.

Checkpoints published for sentence embeddings (all-MiniLM-L6-v2 among them) ship without the MLM
head. Its missing weights are then initialised from scratch: the run says so, records them in
`nlp_transfer.json` (`fresh_head`), and the first steps mostly train that head.

`export_base` turns the finished run into a plain base-model directory (adapter merged, the
original's pooler kept, since the MLM model has none) that any classification run can start from.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
)

from nlp_transfer import catalog
from nlp_transfer.config import opt
from nlp_transfer.data.sources import ensure_splits
from nlp_transfer.errors import ConfigError, DataError
from nlp_transfer.rundir import RunDir
from nlp_transfer.tasks.base import Task
from nlp_transfer.train_config import TrainConfig
from nlp_transfer.transfer import derived_datasets as derived

logger = logging.getLogger(__name__)
OBJECTIVES = ("auto", "mlm", "clm")


@dataclass
class Pretraining:
    text_dataset: str = opt("lee_news", "unlabelled text: lee_news (built-in), a .txt file (one document per line), a csv/jsonl/parquet file or a directory")
    text_column: str = opt("text", "column holding the text")
    objective: str = opt("auto", "auto (mlm for encoders, clm for decoders) | mlm | clm")
    mlm_probability: float = opt(0.15, "share of tokens masked for the masked-LM objective")
    max_texts: int | None = opt(None, "use only the first N texts of the train split (e.g. the text of a labelled set)")

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if not 0 < self.mlm_probability < 1:
            raise ConfigError(f"mlm_probability must be in (0, 1), not {self.mlm_probability}")


def group_texts(input_ids: list[list[int]], block: int) -> list[list[int]]:
    """Concatenate token lists and cut into blocks of `block` (a short tail is kept only if it is all)."""
    flat = [t for ids in input_ids for t in ids]
    blocks = [flat[i : i + block] for i in range(0, len(flat) - block + 1, block)]
    return blocks or ([flat] if flat else [])


def load_text(name: str, seed: int) -> datasets.DatasetDict:
    """A .txt file is one document per line (column `text`); anything else goes through the data sources."""
    path = Path(name).expanduser()
    if path.suffix == ".txt" and path.is_file():
        lines = [" ".join(line.split()) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        return datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": [line for line in lines if line]}))
    return derived.load(name, seed)


class LanguageModelingTask(Task):
    """Masked-/causal-LM training on a text column (its runs are reloaded by `load_trained_lm`)."""

    def __init__(self, cfg: TrainConfig, pre: Pretraining):
        pre.validate()
        super().__init__(cfg)
        self.pre = pre
        self.objective = pre.objective
        self.name = self.peft_task = {"mlm": "masked_lm", "clm": "causal_lm"}.get(pre.objective, "masked_lm")
        self.fresh_head: list[str] = []

    def load_data(self) -> datasets.DatasetDict:
        data = load_text(self.pre.text_dataset, self.cfg.seed)
        col = self.pre.text_column
        for split, ds in data.items():
            if col not in ds.column_names:
                raise DataError(f"the {split} split of {self.pre.text_dataset} has no column {col!r} (columns: {', '.join(ds.column_names)})")
        rename = {col: "text"} if col != "text" else {}
        data = datasets.DatasetDict({s: ds.select_columns([col]).rename_columns(rename) for s, ds in data.items() if s in ("train", "validation")})
        data = ensure_splits(data, "train", "validation", None, self.cfg.seed)
        if self.pre.max_texts:
            data["train"] = data["train"].select(range(min(self.pre.max_texts, len(data["train"]))))
        return data.filter(lambda row: isinstance(row["text"], str) and bool(row["text"].strip()))

    def build_model(self, resolved: catalog.ResolvedModel, tokenizer: Any) -> torch.nn.Module:
        if self.objective == "auto":
            self.objective = "clm" if resolved.family == "decoder" else "mlm"
        self.name = self.peft_task = "masked_lm" if self.objective == "mlm" else "causal_lm"
        auto = AutoModelForMaskedLM if self.objective == "mlm" else AutoModelForCausalLM
        model, info = auto.from_pretrained(resolved.path, output_loading_info=True, use_safetensors=True, dtype=torch.float32,
                                           trust_remote_code=self.cfg.trust_remote_code)  # fmt: skip
        self.fresh_head = sorted(info.get("missing_keys", []))
        if self.fresh_head:
            logger.warning(
                "%s ships without a complete %s head: %d tensors are freshly initialised (%s); they start from random",
                resolved.name, self.objective.upper(), len(self.fresh_head), ", ".join(self.fresh_head[:4]) + (" ..." if len(self.fresh_head) > 4 else ""),
            )  # fmt: skip
        if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model

    def tokenize(self, data: datasets.DatasetDict, tokenizer: Any) -> datasets.DatasetDict:
        block = self.cfg.max_length
        if self.objective == "clm" and tokenizer.eos_token_id is not None:
            encode = lambda b: {"ids": [ids + [tokenizer.eos_token_id] for ids in tokenizer(b["text"])["input_ids"]]}  # noqa: E731
        else:
            encode = lambda b: {"ids": tokenizer(b["text"])["input_ids"]}  # noqa: E731
        out = {}
        for split, ds in data.items():
            ids = ds.map(encode, batched=True, remove_columns=["text"])["ids"]
            blocks = group_texts(ids, block)
            if not blocks:
                raise DataError(f"the {split} split of {self.pre.text_dataset} holds no tokens")
            out[split] = datasets.Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks]})
        return datasets.DatasetDict(out)

    def collator(self, tokenizer: Any) -> DataCollatorForLanguageModeling:
        return DataCollatorForLanguageModeling(tokenizer, mlm=self.objective == "mlm", mlm_probability=self.pre.mlm_probability)

    def evaluate(self, accelerator: Accelerator, model: torch.nn.Module, loader: Any, split: str) -> dict[str, Any]:
        """Token-weighted loss; the same masks every time (forked RNG), so evaluations compare."""
        total = count = 0.0
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(1234)
            for batch in loader:
                loss = model(**batch).loss.float()
                n = (batch["labels"] != -100).sum().float()
                if self.objective == "clm":
                    n = n - len(batch["labels"])  # the first token of each row is never predicted
                loss_sum, tokens = accelerator.gather_for_metrics((loss * n).reshape(1)), accelerator.gather_for_metrics(n.reshape(1))
                total += float(loss_sum.sum())
                count += float(tokens.sum())
        loss = total / max(count, 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "predicted_tokens": int(count)}

    def metadata(self) -> dict[str, Any]:
        return {"objective": self.objective, "fresh_head": self.fresh_head, "text_dataset": self.pre.text_dataset}


def load_trained_lm(run_dir: Path) -> torch.nn.Module:
    """The pretrained-further LM of a finished run, adapters merged into the weights."""
    run = RunDir(run_dir)
    run.require_safetensors()  # PEFT and transformers fall back to pickle files when safetensors are missing
    meta = run.meta()
    auto = AutoModelForMaskedLM if meta["task"] == "masked_lm" else AutoModelForCausalLM
    if not meta.get("is_peft"):
        return auto.from_pretrained(run_dir, use_safetensors=True)
    from peft import PeftModel

    base = auto.from_pretrained(catalog.resolve_model(meta["base_model"]).path, use_safetensors=True)
    return PeftModel.from_pretrained(base, run_dir).merge_and_unload()


def export_base(run_dir: str | Path, out_dir: str | Path) -> Path:
    """A base-model directory (weights + tokenizer) to fine-tune from, with the original's extras kept.

    An MLM model has no pooler; the original checkpoint's pooler (and any other weight the LM
    lacks) is copied over, so the only difference from the original is the adapted encoder.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    meta = RunDir(run_dir).meta()
    lm = load_trained_lm(run_dir)
    if meta["task"] == "causal_lm":
        lm.save_pretrained(out_dir)
    else:
        base = AutoModel.from_pretrained(catalog.resolve_model(meta["base_model"]).path, use_safetensors=True)
        missing, unexpected = base.load_state_dict(lm.base_model.state_dict(), strict=False)
        if unexpected:
            raise ConfigError(f"the adapted encoder does not fit {meta['base_model']}: unexpected {unexpected[:3]}")
        logger.info("adapted encoder exported; kept from the original checkpoint: %s", ", ".join(missing) or "nothing")
        base.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(run_dir).save_pretrained(out_dir)
    return out_dir
