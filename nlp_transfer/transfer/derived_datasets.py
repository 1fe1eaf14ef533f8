"""Datasets derived from the shipped ones, for transfer experiments that need more than one task or domain.

- `rt_subjectivity`: is a sentence a critic's opinion (a Rotten Tomatoes review snippet) or a plot
  description (a sentence of the same corpus's plot summaries)? The construction of Pang & Lee's
  (2004) subjectivity dataset, from the same file. Review sentences come from the sentiment split of
  the same seed (train from train, test from test), plot sentences are split by movie, so no text of
  the sentiment test split is trained on and no movie's plot sits on both sides.
- `rt_typos`: a shifted target domain for domain adaptation. Rotten Tomatoes reviews with seeded
  keyboard typos in about a third of their words (swapped, dropped, doubled or neighbouring keys),
  like hastily typed user reviews. Labels are untouched, but WordPiece sees different token
  sequences (e.g. "brilliant" -> "brillaint" -> br ##ill ##ain ##t), so the features a classifier
  trained on clean text sees move. Its train split is built from the second half of the sentiment
  train split only: pair it with a source of `max_train_samples` <= 5,101 and no text is in both.

`load(name, seed)` serves these and falls back to `nlp_transfer.data.sources.load_source`.
"""

from __future__ import annotations

import random
import re

import datasets
import numpy as np
import pandas as pd

from nlp_transfer.data import rotten_tomatoes, sources

DERIVED = ("rt_subjectivity", "rt_typos")
KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
TYPO_RATE = 0.35
_WORD = re.compile(r"(?P<pre>\W*)(?P<word>[A-Za-z]+)(?P<post>\W*)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def load(name: str, seed: int) -> datasets.DatasetDict:
    if name == "rt_subjectivity":
        return subjectivity(seed)
    if name == "rt_typos":
        return typos(seed)
    return sources.load_source(name, seed)


def _neighbours(ch: str) -> str:
    for row in KEYBOARD:
        i = row.find(ch.lower())
        if i >= 0:
            return row[max(i - 1, 0) : i] + row[i + 1 : i + 2]
    return ""


def typo(token: str, rng: random.Random) -> str:
    """One keyboard slip inside a word of 3+ letters (punctuation around it kept): swap, drop, double
    or hit a neighbouring key."""
    m = _WORD.fullmatch(token)
    if not m or len(m["word"]) < 3:
        return token
    word = m["word"]
    i = rng.randrange(1, len(word) - 1) if len(word) > 3 else 1
    op = rng.choice(("swap", "drop", "double", "neighbour"))
    if op == "swap":
        return m["pre"] + word[:i] + word[i + 1] + word[i] + word[i + 2 :] + m["post"]
    if op == "drop":
        return m["pre"] + word[:i] + word[i + 1 :] + m["post"]
    if op == "double":
        return m["pre"] + word[:i] + word[i] + word[i:] + m["post"]
    near = _neighbours(word[i])
    return m["pre"] + word[:i] + (rng.choice(near) if near else word[i]) + word[i + 1 :] + m["post"]


def add_typos(text: str, seed: int, rate: float = TYPO_RATE) -> str:
    rng = random.Random(seed)
    return " ".join(typo(w, rng) if rng.random() < rate else w for w in text.split(" "))


def typos(seed: int = 42) -> datasets.DatasetDict:
    rt = rotten_tomatoes.load(seed)
    half = len(rt["train"]) // 2
    parts = {"train": rt["train"].select(range(half, len(rt["train"]))), "validation": rt["validation"], "test": rt["test"]}
    out = {}
    for split, ds in parts.items():
        offset = {"train": 0, "validation": 1_000_000, "test": 2_000_000}[split]
        out[split] = ds.map(lambda row, i, base=seed * 7_919 + offset: {"text": add_typos(row["text"], base + i)}, with_indices=True)
    return datasets.DatasetDict(out)


def plot_sentences() -> pd.DataFrame:
    """Sentences (6-60 words) of the corpus's plot summaries: columns movie, text."""
    df = pd.read_csv(rotten_tomatoes.corpus_path()).dropna(subset=["text"])
    rows = []
    for movie, text in df[df["category"] == "plot"][["movie_name", "text"]].itertuples(index=False):
        for sentence in _SENTENCE.split(" ".join(str(text).split())):
            if 6 <= len(sentence.split()) <= 60:
                rows.append((movie, sentence))
    return pd.DataFrame(rows, columns=["movie", "text"]).drop_duplicates("text").reset_index(drop=True)


def subjectivity(seed: int = 42, per_class_train: int = 2000, per_class_eval: int = 250) -> datasets.DatasetDict:
    rng = np.random.default_rng(seed)
    plots = plot_sentences()
    movies = rng.permutation(plots["movie"].unique())
    n_eval = max(1, len(movies) // 10)
    groups = {"validation": movies[:n_eval], "test": movies[n_eval : 2 * n_eval], "train": movies[2 * n_eval :]}
    rt = rotten_tomatoes.load(seed)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["objective", "subjective"])})
    out = {}
    for split, names in groups.items():
        n = per_class_train if split == "train" else per_class_eval
        objective = plots[plots["movie"].isin(names)]["text"].tolist()
        objective = [objective[i] for i in rng.permutation(len(objective))[:n]]
        reviews = rt[split]["text"]
        subjective = [reviews[i] for i in rng.permutation(len(reviews))[: len(objective)]]
        texts, labels = objective + subjective, [0] * len(objective) + [1] * len(subjective)
        order = rng.permutation(len(texts))
        out[split] = datasets.Dataset.from_dict({"text": [texts[i] for i in order], "label": [labels[i] for i in order]}, features=features)
    return datasets.DatasetDict(out)
