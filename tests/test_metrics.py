"""Metrics against answers worked by hand, all offline (sockets blocked, HF offline flags set)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_transfer.errors import ConfigError, DataError
from nlp_transfer.metrics import (
    KNOWN_METRICS,
    classification_metrics,
    load_metric,
    loader,
    paired_bootstrap,
    rouge_metrics,
)

# refs/preds with class 2 never predicted. Confusion (rows true, cols predicted):
#   true 0: [2, 1, 0]   class 0: tp 2, fp 1, fn 1 -> P 2/3, R 2/3, F1 2/3
#   true 1: [1, 1, 0]   class 1: tp 1, fp 2, fn 1 -> P 1/3, R 1/2, F1 2/5
#   true 2: [0, 1, 0]   class 2: tp 0             -> P 0,   R 0,   F1 0
# accuracy 3/6; macro-F1 (2/3 + 2/5 + 0) / 3 = 16/45; weighted (3*2/3 + 2*2/5 + 0) / 6 = 7/15
REFS = [0, 0, 0, 1, 1, 2]
PREDS = [0, 0, 1, 1, 0, 1]

OFFLINE_SCRIPT = """
import socket
import sys


def refuse(*args, **kwargs):
    raise OSError("network access attempted")


socket.socket.connect = refuse
socket.create_connection = refuse
from nlp_transfer.metrics import load_metric

for attempt in ("copy into the empty cache", "import the cached copy"):
    for name in [m for m in sys.modules if m.startswith("evaluate_modules.metrics")]:
        del sys.modules[name]
    print(load_metric("accuracy").compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"])
    print(load_metric("f1").compute(predictions=[0, 1, 1], references=[0, 1, 0], average="macro")["f1"])
    print(load_metric("rouge").compute(predictions=["a b"], references=["a b"])["rougeL"])
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline flags on and any socket connection an error, so a Hub fallback cannot hide."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        monkeypatch.setenv(var, "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_accuracy_two_of_three() -> None:
    assert load_metric("accuracy").compute(predictions=[0, 1, 1], references=[0, 1, 0]) == {
        "accuracy": pytest.approx(2 / 3)
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"average": "macro", "labels": [0, 1, 2]}, 16 / 45),
        ({"average": "macro", "labels": [0, 1]}, (2 / 3 + 2 / 5) / 2),
        ({"average": "micro"}, 0.5),
        ({"average": "weighted"}, 7 / 15),
        ({"average": None, "labels": [0, 1, 2]}, [2 / 3, 2 / 5, 0.0]),
    ],
)
def test_f1_averages(kwargs: dict, expected: float | list[float]) -> None:
    assert load_metric("f1").compute(predictions=PREDS, references=REFS, **kwargs) == {
        "f1": pytest.approx(expected)
    }


def test_f1_binary_default() -> None:
    # positive class 1: tp 1, fp 1, fn 1 -> P = R = F1 = 1/2
    assert load_metric("f1").compute(predictions=[1, 0, 1, 0], references=[1, 1, 0, 0]) == {"f1": 0.5}


def test_rouge_identical_and_disjoint() -> None:
    rouge = load_metric("rouge")
    same = rouge.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])
    assert same == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "rougeLsum": 1.0}
    apart = rouge.compute(predictions=["the cat sat"], references=["dogs run fast"])
    assert apart == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "rougeLsum": 0.0}


def test_rouge_partial_overlap() -> None:
    # 3 prediction tokens all in the 6-token reference: P 1, R 1/2 -> F 2/3.
    # Bigrams: 2 of 2 predicted, 2 of 5 in the reference -> F 2 * 0.4 / 1.4 = 4/7. LCS 3 -> 2/3.
    scores = load_metric("rouge").compute(predictions=["the cat sat"], references=["the cat sat on the mat"])
    assert scores == pytest.approx({"rouge1": 2 / 3, "rouge2": 4 / 7, "rougeL": 2 / 3, "rougeLsum": 2 / 3})


def test_rouge_lsum_matches_sentences_in_any_order() -> None:
    # Swapped sentences: one LCS over the whole text covers 3 of 6 tokens, per-sentence LCS all 6.
    scores = load_metric("rouge").compute(
        predictions=["the dog ran\nthe cat sat"], references=["the cat sat\nthe dog ran"]
    )
    assert scores["rougeL"] == pytest.approx(0.5)
    assert scores["rougeLsum"] == pytest.approx(1.0)


def test_rouge_options() -> None:
    rouge = load_metric("rouge")
    args = {"predictions": ["cats running"], "references": ["cat runs"], "rouge_types": ["rouge1"]}
    assert rouge.compute(**args) == {"rouge1": 0.0}
    assert rouge.compute(**args, use_stemmer=True) == {"rouge1": 1.0}
    per_example = rouge.compute(
        predictions=["a b", "a b"], references=["a b", "c d"], rouge_types=["rouge1"], use_aggregator=False
    )
    assert per_example == {"rouge1": [1.0, 0.0]}
    multi = rouge.compute(predictions=["the cat"], references=[["a dog", "the cat"]], rouge_types=["rouge1"])
    assert multi == {"rouge1": 1.0}


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="accuracy, f1, rouge"):
        load_metric("bleu")
    assert KNOWN_METRICS == ("accuracy", "f1", "rouge")


def test_metric_scripts_ship_next_to_loader() -> None:
    for name in KNOWN_METRICS:
        assert loader.metric_path(name) == Path(loader.__file__).parent / name


def test_classification_metrics_hand_worked() -> None:
    result = classification_metrics(PREDS, REFS, ["neg", "neu", "pos"])
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["macro_f1"] == pytest.approx(16 / 45)
    assert result["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert result["per_class"]["neu"] == pytest.approx(
        {"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "support": 2}
    )
    assert result["per_class"]["pos"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert json.loads(json.dumps(result)) == result


def test_classification_metrics_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="outside 0..1"):
        classification_metrics([0, 2], [0, 1], ["neg", "pos"])
    with pytest.raises(DataError, match="2 predictions but 1 references"):
        classification_metrics([0, 1], [0], ["neg", "pos"])


def test_rouge_metrics_report() -> None:
    preds = ["the cat sat", "the cat sat on the mat", "dogs run fast"]
    refs = ["the cat sat on the mat", "the cat sat on the mat", "the cat sat"]
    result = rouge_metrics(preds, refs)
    assert result["n"] == 3
    assert result["mean_prediction_words"] == pytest.approx(12 / 3)
    assert result["rouge1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert result["rouge2"] == pytest.approx((4 / 7 + 1 + 0) / 3)
    lo, hi = result["rougeL_ci95"]
    assert 0.0 <= lo < result["rougeL"] < hi <= 1.0
    assert rouge_metrics(preds, refs)["rougeL_ci95"] == [lo, hi]  # fixed seed
    assert json.loads(json.dumps(result)) == result
    with pytest.raises(DataError):
        rouge_metrics([], [])


def test_rouge_metrics_constant_scores_give_point_interval() -> None:
    result = rouge_metrics(["a b", "c d"], ["a b", "c d"])
    assert result["rougeL_ci95"] == [1.0, 1.0]


def test_paired_bootstrap() -> None:
    # Differences 0.1 and 0.2: resampled means are 0.1, 0.15 or 0.2 (p = 1/4, 1/2, 1/4),
    # so the 2.5th and 97.5th percentiles are the extremes.
    result = paired_bootstrap([0.2, 0.4], [0.3, 0.6])
    assert result["mean_diff"] == pytest.approx(0.15)
    assert result["ci95"] == pytest.approx([0.1, 0.2])
    assert paired_bootstrap([0.5] * 4, [0.5] * 4) == {"mean_diff": 0.0, "ci95": [0.0, 0.0]}
    with pytest.raises(DataError, match="same examples"):
        paired_bootstrap([0.1], [0.1, 0.2])


def test_fresh_interpreter_loads_offline(tmp_path: Path) -> None:
    """A new process with an empty evaluate cache loads all three, then loads them again from the
    copies evaluate made (keyed by script hash), with HF offline flags on and sockets refused."""
    hf_home = tmp_path / "hf"
    root = Path(loader.__file__).parents[2]
    env = {
        **os.environ,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert [float(x) for x in run.stdout.split()] == pytest.approx([2 / 3, 2 / 3, 1.0] * 2)
    copies = {p.stem for p in (hf_home / "modules").rglob("*.py") if p.stem == p.parent.parent.name}
    assert copies == set(KNOWN_METRICS)
