"""Model cards: Hub-readable metadata carrying the run's own numbers, and honest, loadable text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hub_standin import make_output_dir
from nlp_transfer.card import render_card, write_card
from nlp_transfer.errors import CheckpointError
from nlp_transfer.rundir import RunDir
from nlp_transfer.tasks.spec import task_spec


def split_card(text: str) -> tuple[dict, str]:
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, "card must start with a YAML front matter block"
    return yaml.safe_load(match.group(1)), match.group(2)


def python_blocks(body: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_front_matter_parses_and_carries_test_metrics(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run")
    meta, _ = split_card(render_card(out, repo_id="tester/minilm-rt-lora"))

    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["library_name"] == "peft"
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["license"] == "apache-2.0"
    assert {"nlp-transfer", "lora", "peft"} <= set(meta["tags"])
    assert "datasets" not in meta  # the built-in corpus is not the Hub's rotten_tomatoes dataset

    results = model_index_to_eval_results(meta["model-index"])[1]  # the Hub library's own parser
    got = {(r.metric_type, r.metric_name): r.metric_value for r in results}
    test = json.loads((out / "metrics.json").read_text())["test"]
    names = dict(task_spec("classification").shown_metrics)  # display names come from the task spec
    assert got == {
        ("accuracy", names["accuracy"]): test["accuracy"],
        ("f1", names["macro_f1"]): test["macro_f1"],
    }
    assert [r.metric_args for r in results] == [None, {"average": "macro"}]
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in results} == {
        ("text-classification", "rotten_tomatoes", "test")
    }
    assert ModelCard(render_card(out)).data.to_dict()["library_name"] == "peft"


def test_body_has_the_sections_and_numbers(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run")
    _, body = split_card(render_card(out, repo_id="tester/minilm-rt-lora"))
    for heading in ("What it is", "Training data", "Results", "Training time and hardware", "Limitations"):
        assert f"## {heading}" in body
    assert "74,498 of 22,788,866 (0.33%)" in body
    assert "| accuracy | 0.8113 | 0.8201 |" in body and "| macro-F1 | 0.8071 | 0.8155 |" in body
    assert "| true `rotten` | 391 | 137 |" in body
    assert "7 min 24 s" in body and "CPU, 2 threads" in body
    assert "```yaml\n" in body and "lr: 0.0005" in body
    assert "movie-review snippets" in body and "Sarcasm" in body
    assert 'load_predictor("tester/minilm-rt-lora")' in body
    assert (
        'AutoPeftModelForSequenceClassification.from_pretrained("tester/minilm-rt-lora", num_labels=2)'
        in body
    )
    for block in python_blocks(body):
        compile(block, "card-snippet", "exec")  # the snippets are at least valid Python


def test_full_model_summarisation_card(tmp_path: Path) -> None:
    out = make_output_dir(
        tmp_path / "run",
        task="summarisation",
        method="full",
        is_peft=False,
        base_model_hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        dataset="wiki_lead",
    )
    meta, body = split_card(render_card(out))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "summarization"
    assert meta["base_model_relation"] == "finetune"
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert [(m["name"], m["value"]) for m in metrics] == [
        ("ROUGE-1", 0.286),
        ("ROUGE-2", 0.092),
        ("ROUGE-L", 0.226),
    ]
    assert "zero-shot base (test)" in body  # the untuned baseline sits beside the tuned numbers
    assert "Examples per split: test 23" in body
    assert "2000s Wikipedia" in body
    for mode in task_spec("summarisation").failure_modes:
        assert f"- {mode}" in body
    assert "PeftModel" not in body and 'pipeline("summarization"' in body


def test_minimal_run_renders_without_optional_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "nlp_transfer.json").write_text(
        json.dumps({"task": "causal_lm", "method": "ia3", "is_peft": True})
    )
    meta, body = split_card(render_card(out, license="mit"))
    assert meta["license"] == "mit"
    assert "model-index" not in meta and "base_model" not in meta
    assert "## Results" not in body and "## Training configuration" not in body
    assert "not recorded" in body and "(IA)³" in body


def test_card_leaks_no_secrets_or_local_paths(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run", base_model_hub_id=None, dataset="/home/alice/data/reviews")
    meta_path = out / "nlp_transfer.json"
    meta = json.loads(meta_path.read_text())
    meta["base_model"] = "/home/alice/private-models/minilm-v7"
    meta_path.write_text(json.dumps(meta))
    (out / "run_config.yaml").write_text(
        "hub_token: hf_shouldNeverAppear123456\ndata_dir: /home/alice/data\n"
    )
    text = render_card(out)
    assert "hf_shouldNeverAppear" not in text and "hub_token" not in text
    assert "/home/alice" not in text
    assert "minilm-v7 (local checkpoint)" in text and "reviews (local data)" in text
    front, _ = split_card(text)
    assert "datasets" not in front and "base_model" not in front
    assert front["model-index"][0]["name"] == "minilm-v7-reviews-lora"


def test_hub_dataset_is_linked_and_counts_stay_out_of_model_index(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run", dataset="stanfordnlp/imdb")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["test"].update({"examples": 1276, "loss": 0.41, "eval_time_s": 2.5})
    metrics["validation"].update({"step": 36, "epoch": 2})
    (out / "metrics.json").write_text(json.dumps(metrics))
    front, body = split_card(render_card(out))
    assert front["datasets"] == ["stanfordnlp/imdb"]
    types = [m["type"] for m in front["model-index"][0]["results"][0]["metrics"]]
    assert types == ["accuracy", "f1"]  # the task's shown metrics; loss stays in the table below
    assert "| loss | 0.4100 |" in body
    assert "| step |" not in body and "Examples per split: test 1,276" in body


def test_topic_classifier_gets_no_sentiment_caveats(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run", dataset="ag_news")
    meta = json.loads((out / "nlp_transfer.json").read_text())
    meta["labels"] = ["world", "sports", "business", "sci/tech"]
    (out / "nlp_transfer.json").write_text(json.dumps(meta))
    _, body = split_card(render_card(out))
    assert "Sarcasm" not in body
    for mode in task_spec("classification").failure_modes:  # the task's own caveats, from its spec
        assert f"- {mode}" in body


def test_write_card_is_atomic_and_matches_render(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run", with_clutter=False)
    path = write_card(out, repo_id="tester/x")
    assert path == out / "README.md"
    assert path.read_text() == render_card(out, repo_id="tester/x")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_not_an_output_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nlp_transfer.json is missing"):
        render_card(tmp_path)


def test_run_warnings_reach_the_limitations(tmp_path: Path) -> None:
    out = make_output_dir(tmp_path / "run")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["warnings"] = ["validation loss rose from 0.4000 at step 200 to 0.5200 at step 300"]
    (out / "metrics.json").write_text(json.dumps(metrics))
    _, body = split_card(render_card(out))
    limits = body.split("## Limitations", 1)[1]
    assert "**Warning from this run:** validation loss rose from 0.4000" in limits


def test_usage_snippets_run_and_agree_with_load_predictor(
    tiny_models: dict, review_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The card's code is executed on a real (tiny) adapter run: both snippets print the same label."""
    from conftest import tiny_config
    from nlp_transfer.pipeline import run
    from nlp_transfer.predict import load_predictor

    out = tmp_path / "lora"
    run(tiny_config(tiny_models["bert"], review_csv, out, method="lora", max_steps=3, method_args={"r": 4}))
    _, body = split_card(RunDir(out).card_text() or "")  # the card export wrote
    example = task_spec("classification").example_input
    predictor = load_predictor(str(out))
    expected = predictor.predict([example])[0]["label"]
    ours, plain = python_blocks(body)
    exec(ours.replace("path/to/output_dir", str(out)), {})
    assert f"'label': '{expected}'" in capsys.readouterr().out
    namespace: dict = {}
    exec(plain.replace("path/to/output_dir", str(out)), namespace)
    assert capsys.readouterr().out.strip() == expected
    with torch.no_grad():  # the plain-PEFT model is the trained adapter and head, not a fresh head
        logits = namespace["model"](**namespace["inputs"]).logits
    torch.testing.assert_close(logits, predictor.logits([example]), rtol=0, atol=1e-5)


def test_card_and_hub_import_no_torch() -> None:
    """The card reads facts from the method registry and the dataset registry, but a push from the
    CLI renders it without paying for torch (seconds of import on this machine)."""
    code = "import sys, nlp_transfer.hub; print(sorted(m for m in ('torch', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
