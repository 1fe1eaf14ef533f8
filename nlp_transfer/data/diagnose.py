"""Why a data file could not be read, as one line that names the line and the problem.

`datasets.load_dataset` wraps most parse failures in "DatasetGenerationError: An error occurred while
generating the dataset" and logs the real cause on a line of its own, so a user sees neither the
encoding nor the line. These checks run only after a load has failed: they re-read the file with the
standard library (strict UTF-8, `json`) to find the first bad line, and fall back to the most specific
message in the exception chain (pandas and pyarrow do name lines for ragged CSV rows, for instance).
"""

from __future__ import annotations

import json
from pathlib import Path

# Wrappers whose message says nothing about the file; the cause below them does.
_GENERIC = {"DatasetGenerationError", "SchemaInferenceError", "DatasetGenerationCastError"}
_TEXT_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl"}


def file_problem(path: str | Path) -> str | None:
    """The first line of a text data file that cannot be read (encoding, JSON syntax), if any."""
    path = Path(path)
    if path.suffix not in _TEXT_SUFFIXES or not path.is_file():
        return None
    data = path.read_bytes()
    problem = _encoding_problem(data)
    if problem is None and path.suffix in (".json", ".jsonl"):
        problem = _json_problem(data.decode("utf-8-sig"), lines_only=path.suffix == ".jsonl")
    return problem


def _encoding_problem(data: bytes) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return (
            f"line {line}, column {column}: byte 0x{data[e.start]:02x} (byte offset {e.start}) is not "
            "UTF-8; the file is probably Latin-1/Windows-1252: save it as UTF-8 "
            "(e.g. iconv -f cp1252 -t utf-8 IN > OUT)"
        )
    return None


def _json_problem(text: str, *, lines_only: bool) -> str | None:
    """JSON Lines are checked line by line; a .json file may hold one document or JSON Lines."""
    if not lines_only:
        try:
            return _records_problem(json.loads(text))
        except json.JSONDecodeError as whole:
            first = text.lstrip().split("\n", 1)[0]
            if not _parses(first):  # one (broken) document, not JSON Lines
                return f"line {whole.lineno}, column {whole.colno}: JSON parse error: {whole.msg}"
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            return f"line {number}, column {e.colno}: JSON parse error: {e.msg}"
        if not isinstance(record, dict):
            return f"line {number}: a JSON {type(record).__name__}, not an object of column: value pairs"
    return None


def _records_problem(document: object) -> str | None:
    if isinstance(document, list):
        for index, record in enumerate(document):
            if not isinstance(record, dict):
                return f"item {index} of the top-level list is a JSON {type(record).__name__}, not an object"
    return None


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def specific_cause(error: BaseException) -> str:
    """The deepest non-generic message in the chain, on one line."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    specific = [e for e in chain if type(e).__name__ not in _GENERIC and str(e).strip()]
    chosen = specific[-1] if specific else error
    text = str(chosen).strip().splitlines()
    return f"{type(chosen).__name__}: {text[0] if text else ''}".rstrip(": ")
