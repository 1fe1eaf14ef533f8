"""Check a dataset against its task before anything is trained or written.

Each check raises one `DataError` that names the split, the column and, for bad values, the first
offending row, so the user can fix the file instead of reading a stack trace from a collator.
"""

from __future__ import annotations

from typing import Any

import datasets

from nlp_transfer.config import closest
from nlp_transfer.errors import DataError


def require_columns(data: datasets.DatasetDict, columns: list[str]) -> None:
    for split, ds in data.items():
        if len(ds) == 0:
            raise DataError(f"the {split} split is empty")
        for column in columns:
            if column not in ds.column_names:
                raise DataError(
                    f"the {split} split has no column {column!r}{closest(column, ds.column_names)} "
                    f"(columns: {', '.join(ds.column_names)}); set text_column/label_column/summary_column"
                )


def require_text(data: datasets.DatasetDict, column: str) -> None:
    for split, ds in data.items():
        for row, value in enumerate(ds[column]):
            if not isinstance(value, str):
                raise DataError(
                    f"{split} row {row}: column {column!r} holds {type(value).__name__} {value!r}, not text"
                )
            if not value.strip():
                raise DataError(f"{split} row {row}: column {column!r} is empty")


def _label_names(train: datasets.Dataset, column: str, given: list[str] | None) -> list[str]:
    feature = train.features[column]
    if isinstance(feature, datasets.ClassLabel):
        if given is not None and list(given) != list(feature.names):
            raise DataError(f"labels {given} do not match the dataset's label names {feature.names}")
        return list(feature.names)
    if given is not None:
        return list(given)
    values = set(train[column])
    if all(isinstance(v, str) for v in values):
        return sorted(values)
    if all(isinstance(v, (int, bool)) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    kinds = sorted({type(v).__name__ for v in values})
    raise DataError(f"label column {column!r} must hold strings or integers, found {', '.join(kinds)}")


def _to_index(value: Any, names: list[str], split: str, row: int, column: str, is_classlabel: bool) -> int:
    if isinstance(value, str) and not is_classlabel:
        if value in names:
            return names.index(value)
        if value.isdigit() and int(value) < len(names):
            return int(value)
    elif isinstance(value, (int, bool)) and 0 <= int(value) < len(names):
        return int(value)
    raise DataError(
        f"{split} row {row}: label {value!r} in column {column!r} is not one of the labels {names}"
    )


def classification(
    data: datasets.DatasetDict, text_column: str, label_column: str, labels: list[str] | None = None
) -> tuple[datasets.DatasetDict, list[str]]:
    """Validated splits with columns `text` and `label` (int ids), and the label names in id order."""
    require_columns(data, [text_column, label_column])
    require_text(data, text_column)
    names = _label_names(
        data["train"] if "train" in data else next(iter(data.values())), label_column, labels
    )
    if len(names) < 2:
        raise DataError(f"classification needs at least 2 labels; column {label_column!r} has only {names}")
    out = {}
    for split, ds in data.items():
        is_classlabel = isinstance(ds.features[label_column], datasets.ClassLabel)
        if is_classlabel and ds.features[label_column].names != names:
            raise DataError(
                f"the {split} split's label names {ds.features[label_column].names} differ from train's {names}"
            )
        ids = [
            _to_index(v, names, split, i, label_column, is_classlabel) for i, v in enumerate(ds[label_column])
        ]
        out[split] = datasets.Dataset.from_dict({"text": ds[text_column], "label": ids})
    seen = set(out["train"]["label"]) if "train" in out else set(range(len(names)))
    if len(seen) < 2:
        raise DataError(f"the train split holds a single class ({names[seen.pop()]}); nothing to learn")
    return datasets.DatasetDict(out), names


def summarisation(data: datasets.DatasetDict, text_column: str, summary_column: str) -> datasets.DatasetDict:
    """Validated splits with columns `document` and `summary`."""
    require_columns(data, [text_column, summary_column])
    require_text(data, text_column)
    require_text(data, summary_column)
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"document": ds[text_column], "summary": ds[summary_column]})
            for split, ds in data.items()
        }
    )
