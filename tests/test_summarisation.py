"""Summarisation on tiny random GPT-2, Llama, T5 and BART: label masking, truncation, packing,
generation-based evaluation with ROUGE and the zero-shot baseline, and the summariser predictor."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from conftest import FILLER, POSITIVE, tiny_config
from nlp_transfer import catalog
from nlp_transfer.errors import ConfigError
from nlp_transfer.pipeline import run
from nlp_transfer.predict import load_predictor
from nlp_transfer.tasks.generation import SummarisationCollator
from nlp_transfer.tasks.prompts import PromptFormat, context_length, pick_style
from nlp_transfer.tasks.summarisation import pack
from nlp_transfer.tasks.summary_model import load_generator, load_zero_shot_summariser

DOC = "the film was a story and the cast was really quite brilliant and the plot was funny"
SUMMARY = "the film was brilliant"
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def write_summary_data(root: Path, sizes: tuple[int, int, int] = (24, 6, 6)) -> Path:
    """train/validation/test.jsonl with `document` and `summary`: filler text hiding one keyword."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "validation", "test"), sizes, strict=True):
        rows = []
        for _ in range(n):
            word = rng.choice(POSITIVE)
            doc = rng.choices(FILLER, k=rng.randint(15, 40)) + [word] + rng.choices(FILLER, k=8)
            rows.append({"document": " ".join(doc), "summary": f"the film was {word}"})
        pd.DataFrame(rows).to_json(root / f"{split}.jsonl", orient="records", lines=True)
    return root


def summary_config(model_dir: Path, data: Path, out: Path, **overrides):
    base = dict(
        task="summarisation", text_column="document", method="lora", method_args={"r": 4}, lr=1e-2, max_steps=4,
        batch_size=8, eval_batch_size=4, max_source_tokens=48, max_target_tokens=12, max_new_tokens=6,
    )  # fmt: skip
    return tiny_config(model_dir, data, out, **{**base, **overrides})


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def summ_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_summary_data(tmp_path_factory.mktemp("summaries"))


def prompt_for(tiny_models: dict, name: str) -> tuple[PromptFormat, int | None]:
    resolved = catalog.resolve_model(str(tiny_models[name]))
    tok = catalog.load_tokenizer(resolved)
    return PromptFormat(tok, pick_style(tok, resolved.family)), context_length(
        AutoConfig.from_pretrained(resolved.path), tok
    )


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_labels_mask_every_prompt_token_and_no_summary_token(tiny_models: dict, name: str) -> None:
    prompt, context = prompt_for(tiny_models, name)
    assert prompt.style == "plain"
    examples = [
        prompt.training_example(DOC, SUMMARY, 64, 16, context),
        prompt.training_example("a dull plot", "it was dull", 64, 16, context),
    ]
    for ex in examples:
        n_prompt = ex["labels"].count(-100)
        assert ex["labels"][:n_prompt] == [-100] * n_prompt and -100 not in ex["labels"][n_prompt:]
        assert (
            ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
        )  # labels are the summary tokens, in place
        assert (
            ex["input_ids"][n_prompt - len(prompt.suffix_ids) : n_prompt] == prompt.suffix_ids
        )  # masked up to "Summary:"
        assert ex["labels"][-1] == prompt.tokenizer.eos_token_id  # it learns to stop
    assert prompt.decode(examples[0]["labels"][examples[0]["labels"].count(-100) :]) == SUMMARY

    # The model's loss is exactly the mean cross-entropy over the summary tokens (padding included in the batch).
    model = load_generator(str(tiny_models[name]), "decoder").eval()
    batch = SummarisationCollator(prompt.tokenizer.pad_token_id, left_pad_prompts=True)(examples)
    with torch.no_grad():
        out = model(**batch)
    losses = []
    for row, ex in enumerate(examples):
        start = ex["labels"].count(-100)
        for t in range(start, len(ex["input_ids"])):  # token t is predicted at position t - 1
            losses.append(
                torch.nn.functional.cross_entropy(out.logits[row, t - 1], torch.tensor(ex["input_ids"][t]))
            )
    torch.testing.assert_close(out.loss, torch.stack(losses).mean())


def test_chat_template_prompt_is_used_and_masked(tiny_models: dict, tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    tok.chat_template = CHAT_TEMPLATE
    prompt = PromptFormat(tok, pick_style(tok, "decoder"))
    assert prompt.style == "chat"
    ex = prompt.training_example(DOC, SUMMARY, 64, 16, 256)
    n_prompt = ex["labels"].count(-100)
    text = tok.decode(ex["input_ids"][:n_prompt])
    assert "Summarise the following text" in text and text.endswith("assistant: ")
    assert prompt.decode(ex["labels"][n_prompt:]) == SUMMARY


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_seq2seq_source_and_target_are_separate(tiny_models: dict, name: str) -> None:
    prompt, _ = prompt_for(tiny_models, name)
    assert prompt.style == "seq2seq"
    ex = prompt.training_example(DOC * 20, SUMMARY, 32, 16, None)
    assert len(ex["input_ids"]) == 32 and -100 not in ex["labels"]  # the source is cut, the target is not
    assert prompt.decode(ex["labels"]) == SUMMARY


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_source_truncation_never_cuts_the_summary(tiny_models: dict, name: str) -> None:
    prompt, context = prompt_for(tiny_models, name)
    assert context == 256
    long_doc, long_summary = " ".join([DOC] * 60), " ".join([SUMMARY] * 8)
    target = prompt.target_ids(long_summary, 500)
    ex = prompt.training_example(long_doc, long_summary, 10_000, 500, context)
    assert len(ex["input_ids"]) == context  # the document gave way so the example fits the context
    assert ex["input_ids"][-len(target) :] == target and prompt.decode(target) == long_summary
    assert ex["input_ids"][: len(prompt.prefix_ids)] == prompt.prefix_ids
    assert (
        ex["input_ids"][len(ex["input_ids"]) - len(target) - len(prompt.suffix_ids) : -len(target)]
        == prompt.suffix_ids
    )
    # max_source_tokens binds first when the context is large enough
    assert len(prompt.prompt_ids(long_doc, 20, reserve=10, context=context)) == 20 + prompt.overhead
    with pytest.raises(ConfigError, match="no room for the document"):
        prompt.prompt_ids(long_doc, 100, reserve=context, context=context)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_packed_examples_do_not_see_each_other(tiny_models: dict, name: str) -> None:
    prompt, context = prompt_for(tiny_models, name)
    model = load_generator(str(tiny_models[name]), "decoder").eval()
    a, b = (
        prompt.training_example(DOC, SUMMARY, 64, 16, context),
        prompt.training_example("a dull plot", "it was dull", 64, 16, context),
    )
    rows = pack([a, b], 1000)
    assert len(rows) == 1 and rows[0]["position_ids"] == list(range(len(a["input_ids"]))) + list(
        range(len(b["input_ids"]))
    )
    batch = SummarisationCollator(prompt.tokenizer.pad_token_id, left_pad_prompts=True)(rows)
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        alone = model(input_ids=torch.tensor([b["input_ids"]])).logits[0]
    torch.testing.assert_close(packed[len(a["input_ids"]) :], alone, atol=1e-5, rtol=1e-4)
    assert len(pack([a, b], len(a["input_ids"]) + 1)) == 2


@pytest.mark.parametrize("name", ["gpt2", "llama", "t5", "bart"])
def test_generation_evaluation_scores_rouge_against_zero_shot(
    tiny_models: dict, summ_data: Path, tmp_path: Path, name: str
) -> None:
    metrics = run(summary_config(tiny_models[name], summ_data, tmp_path / name))
    test = metrics["test"]
    assert test["n"] == test["examples"] == 6
    for key in ("rouge1", "rouge2", "rougeL", "loss", "mean_prediction_words"):
        assert 0 <= test[key] < float("inf") and test["zero_shot"][key] >= 0
    assert test["zero_shot"]["n"] == 6 and len(test["rougeL_ci95"]) == 2
    gain = test["gain_vs_zero_shot"]["rougeL"]
    assert (
        gain["mean_diff"] == pytest.approx(test["rougeL"] - test["zero_shot"]["rougeL"])
        and len(gain["ci95"]) == 2
    )
    assert {"rougeL", "loss"} <= set(metrics["history"][-1])
    samples = [json.loads(line) for line in (tmp_path / name / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 and {"reference", "summary", "zero_shot_summary", "rougeL"} <= set(samples[0])
    meta = json.loads((tmp_path / name / "nlp_transfer.json").read_text())
    assert meta["task"] == "summarisation" and meta["family"] == (
        "seq2seq" if name in ("t5", "bart") else "decoder"
    )


def test_validation_generates_only_the_capped_examples(
    tiny_models: dict, summ_data: Path, tmp_path: Path
) -> None:
    metrics = run(
        summary_config(
            tiny_models["gpt2"], summ_data, tmp_path / "r", eval_generate_samples=2, eval_zero_shot=False
        )
    )
    last = metrics["history"][-1]
    assert last["n"] == 2 and last["examples"] == 6  # loss on all, ROUGE on the first 2
    assert "zero_shot" not in metrics["test"] and metrics["test"]["n"] == 6
    loss_only = run(
        summary_config(
            tiny_models["gpt2"],
            summ_data,
            tmp_path / "l",
            eval_generate_samples=0,
            metric_for_best="loss",
            test_split=None,
        )
    )
    assert "rougeL" not in loss_only["history"][-1] and "loss" in loss_only["history"][-1]


def test_packing_trains_on_fewer_rows(tiny_models: dict, summ_data: Path, tmp_path: Path) -> None:
    common = dict(max_steps=0, epochs=1, max_source_tokens=200, eval_zero_shot=False)
    metrics = run(summary_config(tiny_models["llama"], summ_data, tmp_path / "p", packing=True, **common))
    assert metrics["train"]["samples"] <= 24 // 2 and metrics["test"]["n"] == 6  # rows of 2+ examples each
    with pytest.raises(ConfigError, match="packing is for decoders"):
        run(summary_config(tiny_models["t5"], summ_data, tmp_path / "t", packing=True))


@pytest.mark.parametrize("name", ["gpt2", "llama", "bart"])
def test_predictor_batches_stream_and_zero_shot_agree(
    tiny_models: dict, summ_data: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    run(summary_config(tiny_models[name], summ_data, out, max_steps=2, eval_zero_shot=False, test_split=None))
    predictor = load_predictor(str(out))
    docs = pd.read_json(summ_data / "test.jsonl", lines=True)["document"].tolist()[:4]
    docs[1] = docs[1][:40]  # different lengths: left padding in the batch
    batched = predictor.summarise(docs, max_new_tokens=6, batch_size=4)
    assert batched == [predictor.summarise([d], max_new_tokens=6)[0] for d in docs]
    streamed = list(predictor.stream(docs[0], max_new_tokens=6))
    assert (
        streamed
        and streamed[-1] == batched[0]
        and all(b.startswith(a) for a, b in zip(streamed, streamed[1:], strict=False))
    )
    assert predictor.predict(docs[:1], max_new_tokens=6) == [{"summary": batched[0]}]
    zero = load_zero_shot_summariser(str(tiny_models[name]))
    assert zero.prompt.style == predictor.prompt.style and zero.meta["zero_shot"] is True
    assert len(zero.summarise(docs[:2], max_new_tokens=4)) == 2
