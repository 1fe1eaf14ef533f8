"""Quality, not plumbing: the tiny models must actually learn tasks they can learn, and must not
"learn" tasks that hold nothing to learn.

- Summarisation: the document hides one keyword among filler words and the summary is that keyword.
  Fine-tuning the tiny Llama must copy it on held-out documents (ROUGE-L >= 0.9), while the same run
  on shuffled targets (each training summary is another document's keyword) stays low: what the
  model learned is the copy, not the output format.
- Few-shot: k labelled examples per class of a separable sentiment task; the recipe's embedding +
  logistic-regression method must beat chance by a margin a 48-example test split makes unmistakable.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from conftest import FILLER, NEGATIVE, POSITIVE, tiny_config
from nlp_transfer.pipeline import run

KEYWORDS = POSITIVE + NEGATIVE  # 16 words: a blind guess copies the right one 1 time in 16


pytestmark = pytest.mark.usefixtures("one_thread")


def keyword_data(
    root: Path, shuffle_train_targets: bool, sizes: tuple[int, int, int] = (256, 16, 32)
) -> Path:
    """train/validation/test.jsonl: a keyword among 4-16 filler words; the summary is the keyword."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "validation", "test"), sizes, strict=True):
        rows = []
        for _ in range(n):
            word = rng.choice(KEYWORDS)
            doc = rng.choices(FILLER, k=rng.randint(4, 16))
            doc.insert(rng.randrange(len(doc) + 1), word)
            rows.append({"document": " ".join(doc), "summary": word})
        if shuffle_train_targets and split == "train":
            targets = [r["summary"] for r in rows]
            rng.shuffle(targets)
            for row, target in zip(rows, targets, strict=True):
                row["summary"] = target
        pd.DataFrame(rows).to_json(root / f"{split}.jsonl", orient="records", lines=True)
    return root


def keyword_run(tiny_models: dict, data: Path, out: Path) -> dict:
    cfg = tiny_config(
        tiny_models["llama"], data, out, task="summarisation", text_column="document", method="full",
        lr=5e-3, max_steps=300, eval_every=100, batch_size=16, eval_batch_size=32, max_source_tokens=48,
        max_target_tokens=6, max_new_tokens=6, eval_generate_samples=16, eval_zero_shot=False, save_every=10**9,
    )  # fmt: skip
    return run(cfg)


@pytest.mark.parametrize("shuffled", [False, True], ids=["real_targets", "shuffled_targets"])
def test_summarisation_learns_to_copy_the_keyword(tiny_models: dict, tmp_path: Path, shuffled: bool) -> None:
    metrics = keyword_run(tiny_models, keyword_data(tmp_path / "data", shuffled), tmp_path / "run")
    test = metrics["test"]
    assert test["n"] == 32
    if shuffled:
        assert test["rougeL"] < 0.5, test
    else:
        assert test["rougeL"] >= 0.9, test


def _recipe(name: str):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_fewshot_beats_chance_on_a_separable_task(
    tiny_models: dict, review_csv: Path, tmp_path: Path
) -> None:
    """The few-shot recipe on the synthetic reviews (one sentiment word decides the label; the test split is 24 positive, 24 negative).

    embed_lr embeds with the shipped MiniLM, which knows what "superb" and "tedious" mean: from 16
    examples per class it must be right on >= 85% of 48 test reviews (chance 50%: 41 of 48 by luck has
    p < 1e-6), and more labels must help (k=16 above k=4). The fine-tuning path (the tiny random BERT, which has to learn
    the words from 8-32 examples) is checked for what it must do, not for accuracy.
    """
    import json

    from nlp_transfer.transfer.fewshot import FewShotConfig

    recipe = _recipe("fewshot")
    cfg = FewShotConfig(
        train={"model": str(tiny_models["bert"]), "dataset": str(review_csv), "precision": "fp32", "batch_size": 16,
               "eval_batch_size": 48, "max_length": 32, "report_to": "none"},
        ks=[4, 16], seeds=[1, 2], methods={"embed_lr": {}, "full": {"lr": 5e-3}}, min_steps=30, validation_size=16,
        zero_shot=["embedding"], label_descriptions={"positive": "a great film", "negative": "an awful film"},
        output_dir=str(tmp_path / "fewshot"),
    )  # fmt: skip
    cfg.validate()
    report = recipe.study(cfg)
    rows = [json.loads(line) for line in (tmp_path / "fewshot" / "results.jsonl").read_text().splitlines()]
    acc = {(r["method"], r["k"], r["seed"]): r["test_accuracy"] for r in rows}
    assert len(acc) == len(rows) == 2 * (2 * 2 + 1)  # (2 methods x 2 ks + zero-shot) per seed, no duplicates
    assert all(acc["embed_lr", 16, s] >= 0.85 for s in (1, 2)), acc
    mean = lambda k: (acc["embed_lr", k, 1] + acc["embed_lr", k, 2]) / 2  # noqa: E731
    assert mean(16) > mean(4), acc
    assert all(acc["zero_shot_embedding", 0, s] >= 0.75 for s in (1, 2)), acc
    for r in rows:
        if r["method"] == "full":
            assert r["n_train"] == 2 * r["k"] and r["steps"] >= 30 and r["majority_accuracy"] == 0.5, r
    assert "| embed_lr | 16 |" in report and (tmp_path / "fewshot" / "report.md").read_text() == report
