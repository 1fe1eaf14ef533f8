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


def test_too_few_rows_to_hold_out_a_split_is_one_data_error() -> None:
    data = datasets.DatasetDict({"train": datasets.Dataset.from_list(GOOD[:1])})
    with pytest.raises(DataError, match="cannot hold out a test split from 1 training example"):
        sources.ensure_splits(data, "train", "validation", "test", seed=0)


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


# --- unreadable files name the line and the problem (issue 14.6) --------------------------------------

_CSV_OK = "text,label\n" + "".join(
    f"a fine film number {i},positive\na dull one {i},negative\n" for i in range(5)
)
UNREADABLE = {
    # name: (file contents, what the one-line error must say)
    "latin1.csv": (
        (_CSV_OK + "un caf\xe9 cr\xe8me,positive\n").encode("latin-1"),
        r"latin1\.csv: line 12, column 7: byte 0xe9 \(byte offset \d+\) is not UTF-8.*Latin-1",
    ),
    "broken.jsonl": (
        b'{"text": "good", "label": "positive"}\n{"text": "bad", "label": }\n',
        r"broken\.jsonl: line 2, column 26: JSON parse error: Expecting value",
    ),
    "broken.json": (
        b'[\n {"text": "good", "label": "positive"},\n {"text": "bad" "label": "negative"}\n]\n',
        r"broken\.json: line 3, column 17: JSON parse error: Expecting ',' delimiter",
    ),
    "lines.jsonl": (
        b'{"text": "good", "label": "positive"}\n["bad", "negative"]\n',
        r"lines\.jsonl: line 2: a JSON list, not an object",
    ),
    "ragged.csv": (
        _CSV_OK.encode() + b"too,many,fields\n",
        r"ragged\.csv: .*Expected 2 fields in line 12, saw 3",
    ),
    "utf16.csv": (_CSV_OK.encode("utf-16"), r"utf16\.csv: the file is UTF-16"),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_file_error_names_line_and_problem(name: str, tmp_path: Path) -> None:
    """Before: 'could not read FILE: DatasetGenerationError: An error occurred while generating ...'."""
    contents, expected = UNREADABLE[name]
    path = tmp_path / name
    path.write_bytes(contents)
    with pytest.raises(DataError, match=expected) as info:
        sources.load_source(str(path), seed=0)
    message = str(info.value)
    assert "\n" not in message and "An error occurred" not in message
    assert info.value.__cause__ is not None, "the library's own exception stays chained for debugging"


def test_unreadable_split_in_a_directory_is_named(tmp_path: Path) -> None:
    d = _csv(tmp_path / "d", GOOD)
    (d / "test.csv").write_bytes(("text,label\nna\xefve,positive\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"test\.csv: line 2, column 3: byte 0xef"):
        sources.load_source(str(d), seed=0)


def test_debug_switch_prints_the_traceback_behind_the_one_line_error(
    tiny_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The CLI and the recipes share log.report_error: one line, plus the chained traceback on request."""
    import importlib.util

    from nlp_transfer import cli

    REPO = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("classify_recipe", REPO / "recipes" / "classify.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    bad = tmp_path / "broken.jsonl"
    bad.write_bytes(UNREADABLE["broken.jsonl"][0])
    argv = ["--model", str(tiny_models["bert"]), "--dataset", str(bad), "--output_dir", str(tmp_path / "out")]

    for entry in (lambda: cli.main(["train", *argv]), lambda: recipe.main(argv)):
        monkeypatch.delenv("NLP_TRANSFER_DEBUG", raising=False)
        assert entry() == 2
        quiet = capsys.readouterr().err
        assert [line for line in quiet.splitlines() if line.startswith("error:")] == [
            f"error: could not read {bad}: line 2, column 26: JSON parse error: Expecting value"
        ]
        assert "Traceback" not in quiet

        monkeypatch.setenv("NLP_TRANSFER_DEBUG", "1")
        assert entry() == 2
        loud = capsys.readouterr().err
        assert "Traceback (most recent call last)" in loud
        assert "DatasetGenerationError" in loud or "ValueError" in loud, "the cause behind the line is shown"
        assert "The above exception was the direct cause of the following exception" in loud
        assert loud.strip().splitlines()[-1].startswith("error: could not read"), "the one line still ends it"
    assert not (tmp_path / "out").exists()
