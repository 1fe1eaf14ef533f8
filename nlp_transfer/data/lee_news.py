"""Lee news corpus: 300 short Australian news articles (ABC, c. 2001) for domain-adaptive pretraining.

Source: ``gensim/test/test_data/lee_background.cor`` inside the installed gensim package: the "Lee
background corpus" (Lee, Pincombe & Welsh 2005), stories selected from the Australian Broadcasting
Corporation's news mail service, one document per line, plain ASCII. It ships with
gensim, so it works offline with nothing to download. Why it is here: a small unlabelled in-domain text
set to try continued (domain-adaptive) masked/causal LM pretraining on before fine-tuning.

Contents: 300 lines = 293 distinct texts (7 articles appear twice; :func:`load_lee_news` keeps the file
as shipped, :func:`load_lee_news_split` keeps duplicates on one side). ~60k words in all, median ~160
words per document.

Limits: tiny; treat any perplexity change measured on the 30-document validation split as indicative,
not conclusive.

The helper :func:`gensim_test_file` is shared with :mod:`nlp_transfer.data.wiki_lead`.
"""

from __future__ import annotations

import random
from importlib import metadata
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value

from nlp_transfer.errors import AssetError, DataError

LEE_FILE = "lee_background.cor"
LEE_N_DOCS = 300
INSTALL_HINT = "pip install gensim"


def gensim_test_file(name: str) -> Path:
    """Path of a file in gensim's shipped test data; AssetError (with the install command) if absent.

    Located through package metadata so gensim itself (slow, numpy/scipy heavy) is never imported.
    """
    try:
        dist = metadata.distribution("gensim")
    except metadata.PackageNotFoundError as exc:
        raise AssetError(
            f"gensim is not installed; its test data provides the '{name}' corpus. "
            f"Install it with: {INSTALL_HINT}"
        ) from exc
    path = Path(str(dist.locate_file(f"gensim/test/test_data/{name}")))
    if not path.is_file():
        raise AssetError(
            f"gensim {dist.version} is installed but its test data file is missing: {path}. "
            f"Reinstall the PyPI wheel, which ships the test data: {INSTALL_HINT} --force-reinstall"
        )
    return path


def _read_docs(path: Path) -> list[str]:
    """One document per line; blank lines dropped, inner whitespace collapsed."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    docs = [" ".join(line.split()) for line in lines]
    return [d for d in docs if d]


def load_lee_news() -> Dataset:
    """All 300 Lee news documents as a Dataset with one ``text`` column, in file order."""
    docs = _read_docs(gensim_test_file(LEE_FILE))
    if not docs:
        raise DataError(f"{LEE_FILE} in gensim's test data is empty")
    return Dataset.from_dict({"text": docs}, features=Features({"text": Value("string")}))


def _validation_indices(docs: list[str], validation_size: int, seed: int) -> list[int]:
    """Seeded choice of validation rows that keeps identical documents together.

    The corpus holds 7 documents twice (293 distinct texts); a duplicate split across train and
    validation would leak, so whole groups of identical texts are assigned to one side.
    """
    groups: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        groups.setdefault(doc, []).append(i)
    texts = list(groups)
    random.Random(seed).shuffle(texts)
    chosen: list[int] = []
    for text in texts:
        if len(chosen) + len(groups[text]) <= validation_size:
            chosen.extend(groups[text])
        if len(chosen) == validation_size:
            break
    return sorted(chosen)


def load_lee_news_split(seed: int = 42, validation_size: int = 30) -> DatasetDict:
    """Seeded train/validation split (default 270/30) with no text in both; fixed for a given seed.

    Uses its own ``random.Random(seed)`` shuffle so the split does not depend on numpy or on
    ``datasets`` internals across versions.
    """
    full = load_lee_news()
    if not 0 < validation_size < len(full):
        raise DataError(f"validation_size must be between 1 and {len(full) - 1}, got {validation_size}")
    val_idx = _validation_indices(full["text"], validation_size, seed)
    val_set = set(val_idx)
    train_idx = [i for i in range(len(full)) if i not in val_set]
    return DatasetDict(train=full.select(train_idx), validation=full.select(val_idx))
