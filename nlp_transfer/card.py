"""Model cards for exported runs, rendered with huggingface_hub's `ModelCard` and a Jinja template.

The card is built only from what export wrote (read through `RunDir`), so it can be re-rendered at
any time without the training code, and the Hub shows the numbers the run measured. The front
matter is huggingface_hub's `ModelCardData` (evaluation results as `EvalResult`s, which it turns into
the Hub's model-index); the text is `templates/model_card.md`. The facts come from their owners: the
task's from `tasks.spec`, the built-in datasets' from `data.sources`, the methods' from their registry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from nlp_transfer.data.sources import BUILTIN, SENTIMENT_FAILURES, SENTIMENT_LABELS
from nlp_transfer.methods.registry import CARD_NOTES
from nlp_transfer.rundir import CARD_FILE, CONFIG_FILE, RunDir
from nlp_transfer.tasks.spec import SPECS, TaskSpec

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
CARD_MARKER = "<!-- card written by nlp-transfer; edit freely, `write_card` rewrites it -->"
DEFAULT_LICENSE = "apache-2.0"
# Config keys whose values must never reach a public card, whatever the run stored.
SECRET_KEY = re.compile(r"token|secret|passw|api[_-]?key|credential", re.IGNORECASE)
# Metric names that describe cost, not quality: shown elsewhere, kept out of model-index and the results table.
COST_METRIC = re.compile(
    r"latency|time|runtime|per_s|per_second|memory|examples|samples|count|^n$|^steps?$|^epochs?$", re.I
)
SPLIT_KEY = re.compile(
    r"split|fraction|seed|max_train|max_eval|num_train|train_size|test_size|val_size|validation", re.I
)
# The Hub's metric ids (and arguments) for keys that are not already one.
METRIC_TYPES = {f"{avg}_f1": ("f1", {"average": avg}) for avg in ("macro", "micro", "weighted")}
METRIC_TYPES |= {k: ("rouge", None) for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
HUB_DATASET_ID = re.compile(r"^[A-Za-z0-9][\w-]*(/[A-Za-z0-9][\w-]*)?$")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if not _number(value):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {sec} s"


def _quality(d: dict[str, Any]) -> dict[str, Any]:
    """Scalar quality metrics; costs (latency, counts) belong to other sections."""
    return {k: v for k, v in d.items() if _number(v) and not COST_METRIC.search(k)}


def _short_name(name: str) -> str:
    """The last component of a path or hub id (what a card can show without leaking a directory)."""
    return Path(name.rstrip("/\\")).name or name


def _public(name: str, local: str = "") -> str:
    """A name a public card can show: a local path becomes its last component (marked `local`)."""
    if not (name.startswith((".", "/", "~")) or "\\" in name or Path(name).is_absolute()):
        return name
    return f"{_short_name(name)} ({local})" if local else _short_name(name)


def _dataset_title(run: RunDir) -> str:
    if run.dataset in BUILTIN:
        return BUILTIN[run.dataset].title
    return _public(run.dataset, "local data") if run.dataset else "unknown dataset"


def _model_name(run: RunDir, repo_id: str | None) -> str:
    if repo_id:
        return repo_id.rsplit("/", 1)[-1]
    parts = (_short_name(run.hub_base or run.base_model), _short_name(run.dataset or ""), run.method)
    return "-".join(p for p in parts if p and p not in ("unknown", "?"))


def _safe_config(config: dict[str, Any]) -> dict[str, Any]:
    """Drop anything that looks like a credential and hide local absolute paths."""
    return {
        str(k): f".../{Path(v).name}" if isinstance(v, str) and v.startswith(("/", "~")) and len(v) > 1 else v
        for k, v in config.items()
        if not SECRET_KEY.search(str(k))
    }


def _peft_class(run: RunDir, spec: TaskSpec | None) -> str:
    """PEFT's Auto class for the adapter (it loads the base its adapter config names, then the adapter)."""
    weights = run.weight_config()
    arch = str((weights.get("architectures") or [""])[0])
    if weights.get("task_type") == "SEQ_2_SEQ_LM" or arch.endswith("ForConditionalGeneration"):
        return "AutoPeftModelForSeq2SeqLM"
    return "AutoPeftModel" + (spec.auto_class if spec else "AutoModel").removeprefix("AutoModel")


def card_data(run: RunDir, *, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> ModelCardData:
    """The YAML header: what the Hub indexes, links and shows as evaluation results.

    model-index holds the task's shown metrics from the test split (all quality metrics for a task
    without a spec); built-in and local datasets get no Hub link, since that would name other data.
    """
    spec = SPECS.get(run.task)
    test = _quality(run.split("test"))
    names = dict(spec.shown_metrics) if spec else {k: k for k in test}
    task_type = spec.pipeline_tag if spec else run.task
    results = [
        EvalResult(
            task_type=task_type,
            task_name=task_type.replace("-", " ").title(),
            dataset_type=_public(run.dataset or "unknown"),
            dataset_name=_dataset_title(run),
            dataset_split="test",
            metric_type=METRIC_TYPES.get(k, (k, None))[0],
            metric_value=float(test[k]),
            metric_name=names[k],
            metric_args=METRIC_TYPES.get(k, (k, None))[1],
        )
        for k in names
        if k in test
    ]
    hub_dataset = run.dataset and run.dataset not in BUILTIN and HUB_DATASET_ID.match(run.dataset)
    extra = {"base_model_relation": "adapter" if run.is_peft else "finetune"} if run.hub_base else {}
    return ModelCardData(
        license=license,
        base_model=run.hub_base,
        library_name="peft" if run.is_peft else "transformers",
        pipeline_tag=spec.pipeline_tag if spec else None,
        tags=list(dict.fromkeys(t for t in ("nlp-transfer", run.method, "peft" if run.is_peft else "") if t)),
        datasets=[run.dataset] if hub_dataset else None,
        metrics=list(dict.fromkeys(r.metric_type for r in results)) or None,
        eval_results=results or None,
        model_name=_model_name(run, repo_id) if results else None,
        **extra,
    )


def _tables(run: RunDir, spec: TaskSpec | None) -> dict[str, tuple[list[str], list[list[str]]]]:
    """(header, rows) of the results table (test, validation, untuned base), per-class and confusion tables."""
    test, names = run.split("test"), dict(spec.shown_metrics) if spec else {}
    zero_shot = test.get("zero_shot") or run.metrics().get("zero_shot")
    columns = [("test", test), ("validation", run.split("validation")), ("zero-shot base (test)", zero_shot)]
    columns = [(name, _quality(v)) for name, v in columns if isinstance(v, dict) and _quality(v)]
    tables = {}
    if columns:
        keys = dict.fromkeys(k for _, values in columns for k in values)
        rows = [[names.get(k, k), *(_fmt(v.get(k, "–")) for _, v in columns)] for k in keys]
        tables["results"] = (["Metric", *(name for name, _ in columns)], rows)
    per_class = {n: v for n, v in (test.get("per_class") or {}).items() if isinstance(v, dict)}
    if fields := list(dict.fromkeys(f for v in per_class.values() for f in v if _number(v[f]))):
        rows = [[f"`{n}`", *(_fmt(v.get(f, "–")) for f in fields)] for n, v in per_class.items()]
        tables["per_class"] = (["Class", *fields], rows)
    matrix = test.get("confusion_matrix")
    if isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix):
        labels = run.labels if len(run.labels) == len(matrix) else [str(i) for i in range(len(matrix))]
        rows = [[f"true `{labels[i]}`", *map(_fmt, r)] for i, r in enumerate(matrix)]
        tables["confusion"] = (["", *(f"pred `{n}`" for n in labels)], rows)
    return tables


def _cost(run: RunDir) -> list[tuple[str, str]]:
    """The cost section: time, throughput, steps, precision, memory, latency, hardware, libraries."""
    train, meta, metrics = run.split("train"), run.meta(), run.metrics()
    latency = run.split("test").get("eval_latency_ms_per_example")
    precision = str(train.get("mixed_precision") or "")
    versions = meta.get("library_versions") if isinstance(meta.get("library_versions"), dict) else {}
    items = [
        ("Training time", _number(train.get("train_time_s")) and _duration(train["train_time_s"])),
        ("Throughput", _number(train.get("samples_per_s")) and f"{train['samples_per_s']:,.1f} samples/s"),
        *(
            (k.capitalize(), _number(train.get(k)) and f"{train[k]:,g}")
            for k in ("steps", "epochs", "processes")
        ),
        ("Precision", "fp32" if precision.lower() in ("no", "none") else precision),
        ("Stopped early", train.get("stopped_early") is True and "yes (no improvement on validation)"),
        ("Peak memory", _number(metrics.get("peak_memory_mb")) and f"{metrics['peak_memory_mb']:,.0f} MB"),
        ("Evaluation latency", _number(latency) and f"{latency:.2f} ms per example"),
        ("Hardware", meta.get("hardware")),
        ("Libraries", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))),
        ("Exported", meta.get("created")),
    ]
    return [(label, str(value)) for label, value in items if value]


def _failure_modes(run: RunDir, spec: TaskSpec | None) -> tuple[str, ...]:
    """Sentiment caveats only for sentiment labels (a topic classifier fails in other ways)."""
    labels = {label.lower() for label in run.labels}
    if spec and spec.labelled and labels and labels <= SENTIMENT_LABELS:
        return SENTIMENT_FAILURES
    return spec.failure_modes if spec else ()


def render_card(output_dir: Path | str, *, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> str:
    """Markdown model card (YAML front matter + sections) for an exported run dir."""
    run = RunDir(output_dir)
    spec = SPECS.get(run.task)
    config = _safe_config(run.config())
    meta = run.meta()
    trained, total = meta.get("trainable_params"), meta.get("total_params")
    params = None
    if _number(trained) and _number(total) and total > 0:
        params = f"{_fmt(trained)} of {_fmt(total)} ({100.0 * trained / total:.2f}%)"
    splits = ("train", "validation", "test")
    sizes = [(s, run.split(s).get(k)) for s in splits for k in ("examples", "n_examples", "num_examples")]
    card = ModelCard.from_template(
        card_data(run, license=license, repo_id=repo_id),
        template_path=str(TEMPLATE),
        run=run,
        spec=spec,
        title=repo_id or _model_name(run, None),
        marker=CARD_MARKER,
        base=_public(run.hub_base or meta.get("base_model") or "unknown base model", "local checkpoint"),
        dataset_title=_dataset_title(run),
        note=BUILTIN.get(run.dataset or ""),
        method_note=CARD_NOTES.get(run.method, f"`{run.method}`"),
        params=params,
        splits=", ".join(
            f"`{k}`: {v}" for k, v in sorted(config.items()) if v is not None and SPLIT_KEY.search(k)
        ),
        sizes=", ".join(f"{s} {n:,}" for s, n in sizes if isinstance(n, int) and not isinstance(n, bool)),
        tables=_tables(run, spec),
        cost=_cost(run),
        config_file=CONFIG_FILE,
        config_yaml=yaml.safe_dump(config, sort_keys=True, allow_unicode=True).rstrip() if config else None,
        failure_modes=_failure_modes(run, spec),
        where=repo_id or "path/to/output_dir",
        peft_class=_peft_class(run, spec),
    )
    return str(card).rstrip() + "\n"


def write_card(output_dir: Path | str, *, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> Path:
    """Render the card and write it as the run's card file (atomically); returns its path."""
    return RunDir(output_dir).write_text(CARD_FILE, render_card(output_dir, license=license, repo_id=repo_id))


def is_own_card(text: str) -> bool:
    """True for cards this module wrote (as opposed to one the user wrote or edited by hand)."""
    return CARD_MARKER in text


def is_placeholder_card(text: str) -> bool:
    """True for the unfilled template PEFT's `save_pretrained` drops next to an adapter."""
    return "[More Information Needed]" in text and "nlp-transfer" not in text
