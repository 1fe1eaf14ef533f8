"""Shared fixtures: tiny random models (seconds to train) and small synthetic datasets, all offline."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming", "superb", "gripping"]
NEGATIVE = ["awful", "boring", "dull", "clumsy", "tedious", "lifeless", "bland", "messy"]
FILLER = [
    "the",
    "film",
    "story",
    "cast",
    "was",
    "a",
    "plot",
    "and",
    "really",
    "quite",
    "movie",
    "acting",
    "script",
]


def synthetic_reviews(n: int, seed: int = 0) -> list[dict]:
    """Reviews whose label is decided by one sentiment word among filler: learnable in a few steps."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        words = rng.choices(FILLER, k=rng.randint(3, 12))
        words.insert(rng.randrange(len(words) + 1), word)
        rows.append({"text": " ".join(words), "label": ["negative", "positive"][label]})
    return rows


def _word_tokenizer(path: Path, eos: bool) -> None:
    """A small trained BPE tokenizer (what tiny decoders need: no tokenizer ships for them)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [r["text"] for r in synthetic_reviews(400)] + [
        "summary: " + " ".join(FILLER + POSITIVE + NEGATIVE)
    ]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    if not eos:
        fast.pad_token = "<pad>"
    fast.save_pretrained(path)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> directory of a tiny random model + tokenizer: bert, gpt2, llama, t5, bart."""
    import torch
    from transformers import (
        AutoModel,
        AutoTokenizer,
        BartConfig,
        BertConfig,
        GPT2Config,
        LlamaConfig,
        T5Config,
    )

    from nlp_transfer.catalog import resolve_model

    root = tmp_path_factory.mktemp("tiny_models")
    out = {}
    torch.manual_seed(0)
    bert_tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6").path)
    bert = root / "bert"
    AutoModel.from_config(
        BertConfig(
            vocab_size=bert_tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    ).save_pretrained(bert)
    bert_tok.save_pretrained(bert)
    out["bert"] = bert
    for name, cfg_cls, kwargs in (
        ("gpt2", GPT2Config, {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 256}),
        (
            "llama",
            LlamaConfig,
            {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "max_position_embeddings": 256,
            },
        ),
        (
            "t5",
            T5Config,
            {
                "d_model": 32,
                "d_ff": 64,
                "num_layers": 2,
                "num_heads": 2,
                "d_kv": 16,
                "decoder_start_token_id": 1,
            },
        ),
        (
            "bart",
            BartConfig,
            {
                "d_model": 32,
                "encoder_layers": 2,
                "decoder_layers": 2,
                "encoder_attention_heads": 2,
                "decoder_attention_heads": 2,
                "encoder_ffn_dim": 64,
                "decoder_ffn_dim": 64,
                "max_position_embeddings": 256,
            },
        ),
    ):
        path = root / name
        decoder = name in ("gpt2", "llama")
        _word_tokenizer(path, eos=decoder)
        tok = AutoTokenizer.from_pretrained(path)
        ids = {
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            "eos_token_id": tok.eos_token_id,
            "bos_token_id": tok.bos_token_id,
        }
        config = cfg_cls(vocab_size=len(tok), **kwargs, **ids)
        if decoder:
            from transformers import AutoModelForCausalLM

            config.architectures = ["GPT2LMHeadModel" if name == "gpt2" else "LlamaForCausalLM"]
            AutoModelForCausalLM.from_config(config).save_pretrained(path)
        else:
            from transformers import AutoModelForSeq2SeqLM

            AutoModelForSeq2SeqLM.from_config(config).save_pretrained(path)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (use with `pytestmark = pytest.mark.usefixtures("one_thread")`).

    Tiny models gain nothing from a second thread, and on a busy 2-core machine an OpenMP thread that
    waits for a descheduled partner makes every op ~10x slower. Tests that compare an in-process run
    with a subprocess also need the same thread count on both sides for bit-identical sums.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def review_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.csv / validation.csv / test.csv of synthetic reviews (labels as strings)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("reviews")
    for split, n, seed in (("train", 192, 0), ("validation", 48, 1), ("test", 48, 2)):
        pd.DataFrame(synthetic_reviews(n, seed)).to_csv(root / f"{split}.csv", index=False)
    return root


def kill_at(step: int):
    """An `on_step` callback that raises at optimizer step `step`, as a killed run would stop there."""

    def crash(state) -> None:
        if state.step == step:
            raise KeyboardInterrupt("simulated kill")

    return crash


def tiny_config(model_dir: Path, data_dir: Path, out: Path, **overrides):
    """A TrainConfig for a seconds-long run of a tiny model on the synthetic reviews."""
    from nlp_transfer.train_config import TrainConfig

    base = dict(
        model=str(model_dir), dataset=str(data_dir), method="full", lr=5e-3, epochs=3, batch_size=16,
        eval_batch_size=32, precision="fp32", report_to="none", output_dir=str(out), log_every=5, max_length=32,
    )  # fmt: skip
    base.update(overrides)
    cfg = TrainConfig(**base)
    cfg.validate()
    return cfg
