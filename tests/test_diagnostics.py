"""The warnings a run prints about itself: a collapsed classifier and a rising validation loss."""

from __future__ import annotations

from nlp_transfer.diagnostics import collapse_warning, overfit_warning, run_warnings

LABELS = ["negative", "positive"]


def test_majority_class_answer_is_flagged() -> None:
    # what the 47-step MiniLM run produced: every test review called positive
    test = {"accuracy": 0.57, "confusion_matrix": [[0, 172], [0, 228]]}
    warning = collapse_warning(test, LABELS)
    assert warning and "'positive' for 100% of the 400" in warning and "0.570" in warning


def test_a_model_that_learned_is_not_flagged() -> None:
    test = {"accuracy": 0.80, "confusion_matrix": [[130, 42], [38, 190]]}
    assert collapse_warning(test, LABELS) is None


def test_mixed_answers_no_better_than_majority_are_flagged() -> None:
    test = {"accuracy": 0.575, "confusion_matrix": [[40, 132], [38, 190]]}
    assert collapse_warning(test, LABELS) is not None


def test_rising_validation_loss_is_overfitting() -> None:
    history = [{"step": 100, "loss": 0.45}, {"step": 200, "loss": 0.40}, {"step": 300, "loss": 0.52}]
    warning = overfit_warning(history)
    assert warning and "0.4000 at step 200" in warning and "+30%" in warning
    assert overfit_warning(history[:2]) is None  # still improving
    assert overfit_warning(history[:1]) is None  # one evaluation says nothing


def test_run_warnings_collects_both() -> None:
    metrics = {
        "history": [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.7}],
        "test": {"accuracy": 0.57, "confusion_matrix": [[0, 172], [0, 228]]},
    }
    assert len(run_warnings(metrics, LABELS)) == 2
    assert run_warnings({"history": []}, None) == []
