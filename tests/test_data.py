"""Bad data gets one clear error naming the problem, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest

from conftest import synthetic_reviews, tiny_config
from nlp_transfer.data import rotten_tomatoes, sources
from nlp_transfer.errors import DataError
from nlp_transfer.pipeline import run


def _csv(root: Path, rows: list[dict], name: str = "train.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / name, index=False)
    return root


GOOD = synthetic_reviews(60)


@pytest.mark.parametrize(
    "case, make, message",
    [
        (
            "missing column",
            lambda d: _csv(d, [{"review": r["text"], "label": r["label"]} for r in GOOD]),
            "no column 'text'",
        ),
        (
            "empty split",
            lambda d: (_csv(d, GOOD), (d / "test.csv").write_text("text,label\n"))[0],
            "the test split is empty",
        ),
        (
            "label outside set",
            lambda d: (_csv(d, GOOD), _csv(d, GOOD[:5] + [{"text": "meh", "label": "neutral"}], "test.csv"))[
                0
            ],
            "label 'neutral'",
        ),
        (
            "missing text value",
            lambda d: _csv(d, GOOD[:10] + [{"text": None, "label": "positive"}] + GOOD[10:]),
            "row 10: column 'text' holds NoneType",
        ),
        (
            "single class",
            lambda d: _csv(d, [r for r in GOOD if r["label"] == "positive"]),
            "has only \\['positive'\\]",
        ),
        (
            "unreadable file",
            lambda d: (d.mkdir(parents=True), (d / "train.parquet").write_bytes(b"\x00garbage"))[0],
            "could not read",
        ),
    ],
)
def test_bad_data_raises_and_writes_nothing(
    case: str, make, message: str, tiny_models: dict, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    make(data_dir)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        run(tiny_config(tiny_models["bert"], data_dir, out))
    assert not out.exists(), f"{case}: the output directory must not be created"


def test_numeric_column_as_text_is_refused(tiny_models: dict, tmp_path: Path) -> None:
    data_dir = _csv(tmp_path / "d", [{**r, "stars": i % 5} for i, r in enumerate(GOOD)])
    with pytest.raises(DataError, match="column 'stars' holds int .* not text"):
        run(tiny_config(tiny_models["bert"], data_dir, tmp_path / "o", text_column="stars"))
    assert not (tmp_path / "o").exists()


def test_wrong_label_count_in_config(tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not one of the labels"):
        run(tiny_config(tiny_models["bert"], review_csv, tmp_path / "o", labels=["negative", "neutral"]))
    assert not (tmp_path / "o").exists()


def test_unknown_dataset_and_split_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="did you mean 'rotten_tomatoes'"):
        sources.load_source("rotten_tomatos", seed=0)
    with pytest.raises(DataError, match="not found"):
        sources.load_source(str(tmp_path / "nope.csv"), seed=0)
    data = datasets.DatasetDict({"train": datasets.Dataset.from_list(GOOD)})
    with pytest.raises(DataError, match="no split 'valid'"):
        sources.ensure_splits(data, "train", "valid", None, seed=0)


def test_single_file_gets_held_out_splits(tmp_path: Path) -> None:
    d = _csv(tmp_path / "one", GOOD)
    data = sources.ensure_splits(
        sources.load_source(str(d / "train.csv"), 0), "train", "validation", "test", seed=0
    )
    assert sorted(data) == ["test", "train", "validation"]
    assert sum(len(v) for v in data.values()) == len(GOOD)


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "disk"])
def test_other_formats_and_label_names_kept(kind: str, tiny_models: dict, tmp_path: Path) -> None:
    df = pd.DataFrame(synthetic_reviews(96)).rename(columns={"text": "body", "label": "stars"})
    src = tmp_path / "src"
    src.mkdir()
    if kind == "jsonl":
        df.to_json(src / "train.jsonl", orient="records", lines=True)
    elif kind == "parquet":
        df.to_parquet(src / "train.parquet")
    else:
        src = tmp_path / "disk"
        datasets.DatasetDict({"train": datasets.Dataset.from_pandas(df)}).save_to_disk(str(src))
    out = tmp_path / "out"
    run(tiny_config(tiny_models["bert"], src, out, text_column="body", label_column="stars", max_steps=2))
    assert json.loads((out / "nlp_transfer.json").read_text())["labels"] == ["negative", "positive"]
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}


def test_builtin_rotten_tomatoes_split() -> None:
    data = rotten_tomatoes.load(seed=42)
    assert {k: len(v) for k, v in data.items()} == {"train": 10202, "validation": 1275, "test": 1275}
    texts = [set(v["text"]) for v in data.values()]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert data["train"].features["label"].names == ["negative", "positive"]
