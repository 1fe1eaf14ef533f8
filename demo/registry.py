"""Find finished runs, load each base model once, and switch between its adapters.

Why a registry: a demo that reloads the base model for every adapter a user picks spends seconds per
click and holds one copy of the base per adapter. Runs that share a base model (same name, task,
head size and PEFT type) are loaded into one `PeftModel` with `load_adapter(dir, adapter_name=...)`;
picking another adapter is then a `set_adapter` call (a few ms, against a quarter of a second to
seconds for a reload: benchmarks/demo_load.py). A lock per base model makes
"switch, then predict" atomic, so concurrent requests for different adapters never see each other's.

Everything here reads only what `nlp_transfer.export` wrote; a run that cannot be served (no
safetensors weights, another base model than its fingerprint says, unreadable files) is refused
with a reason instead of stopping the demo.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nlp_transfer import export, predict
from nlp_transfer.errors import CheckpointError, NLPTransferError

logger = logging.getLogger("nlp_transfer.demo")

TASKS = ("classification", "summarisation")
SKIP_DIRS = {"checkpoints", ".export-tmp", "logs"}


@dataclass
class Adapter:
    """One finished run as the demo shows it: the name users pick, and what the run says about itself."""

    name: str
    run_dir: Path
    meta: dict[str, Any]
    metrics: dict[str, Any]
    card: str
    max_length: int = 512

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def base_model(self) -> str:
        return str(self.meta.get("base_model", "?"))

    @property
    def method(self) -> str:
        return str(self.meta.get("method", "?"))

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels") or [])

    @property
    def test_metrics(self) -> dict[str, Any]:
        return self.metrics.get("test") or {}

    def group_key(self) -> tuple[Any, ...]:
        """Runs with the same key can share one loaded base model; full fine-tunes never share."""
        if not self.meta.get("is_peft"):
            return ("full", str(self.run_dir))
        peft_type = _read_json(self.run_dir / "adapter_config.json").get("peft_type", "?")
        return (self.task, self.base_model, peft_type, len(self.labels))


@dataclass
class Refused:
    """A run found but not served, and why (shown in the demo and printed at start-up)."""

    source: str
    reason: str


@dataclass
class BaseGroup:
    """One loaded base model with all its adapters; `predictor.model` is the PeftModel (or full model)."""

    base_model: str
    predictor: Any
    peft_names: dict[str, str] = field(default_factory=dict)  # adapter name -> PEFT adapter name
    views: dict[str, Any] = field(default_factory=dict)  # adapter name -> predictor (per-adapter labels)
    # a Lock, not an RLock: Gradio may resume a streaming generator (which holds it) on another thread
    lock: threading.Lock = field(default_factory=threading.Lock)
    load_s: float = 0.0

    @property
    def is_peft(self) -> bool:
        from peft import PeftModel

        return isinstance(self.predictor.model, PeftModel)

    def activate(self, name: str) -> None:
        """Make `name` the active adapter; skipped when it already is (set_adapter walks every layer)."""
        if self.is_peft and self.predictor.model.active_adapter != self.peft_names[name]:
            self.predictor.model.set_adapter(self.peft_names[name])


class Registry:
    """Adapters by name, their loaded base models, and the runs that were refused."""

    def __init__(self) -> None:
        self.adapters: dict[str, Adapter] = {}
        self.groups: dict[str, BaseGroup] = {}  # adapter name -> its group
        self.refused: list[Refused] = []
        self._zero_shot: dict[str, Any] = {}
        self._zero_shot_lock = threading.Lock()

    def names(self, task: str) -> list[str]:
        return [n for n, a in self.adapters.items() if a.task == task]

    def get(self, name: str, task: str) -> Adapter:
        adapter = self.adapters.get(name)
        if adapter is None or adapter.task != task:
            known = ", ".join(self.names(task)) or "none loaded"
            raise CheckpointError(f"no {task} adapter named {name!r} (available: {known})")
        return adapter

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """The predictor with adapter `name` active, held exclusively until the block ends."""
        group = self.groups[name]
        with group.lock:
            group.activate(name)
            yield group.views.get(name, group.predictor)

    def base_models(self, task: str) -> list[str]:
        """Base models of loaded PEFT adapters for `task`: their zero-shot output costs no extra load."""
        seen = {g.base_model for n, g in self.groups.items() if self.adapters[n].task == task and g.is_peft}
        return sorted(seen)

    def zero_shot_ready(self, base_model: str) -> bool:
        """Whether the untuned base can run without a load first."""
        return base_model in self.base_models("summarisation") or base_model in self._zero_shot

    @contextmanager
    def zero_shot(self, base_model: str) -> Iterator[Any]:
        """A summariser running the untuned base: a loaded group with its adapters disabled, else loaded once."""
        for name, group in self.groups.items():
            if (
                self.adapters[name].task == "summarisation"
                and group.base_model == base_model
                and group.is_peft
            ):
                with group.lock, group.predictor.model.disable_adapter():
                    yield group.predictor
                return
        with self._zero_shot_lock:
            if base_model not in self._zero_shot:
                from nlp_transfer.tasks.summarisation import load_zero_shot_summariser

                logger.info("loading zero-shot base %s", base_model)
                self._zero_shot[base_model] = load_zero_shot_summariser(base_model)
            yield self._zero_shot[base_model]


# --- discovery ---------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def card_body(run_dir: Path) -> str:
    """The model card without its YAML front matter (the Hub metadata is not for people)."""
    try:
        text = (run_dir / "README.md").read_text()
    except OSError:
        return ""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S).strip()


def _run_max_length(run_dir: Path) -> int:
    import yaml

    try:
        return int((yaml.safe_load((run_dir / "run_config.yaml").read_text()) or {}).get("max_length", 512))
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        return 512


def find_run_dirs(root: Path) -> list[Path]:
    """Every finished run (a directory holding nlp_transfer.json) at or under `root`."""
    if (root / export.META_FILE).is_file():
        return [root]
    found = []
    for meta in sorted(root.rglob(export.META_FILE)):
        if not SKIP_DIRS.intersection(meta.relative_to(root).parts[:-1]):
            found.append(meta.parent)
    return found


def read_adapter(name: str, run_dir: Path) -> Adapter:
    """An Adapter for a run directory; raises CheckpointError when the run cannot be served."""
    meta = export.read_meta(run_dir)
    if meta.get("task") not in TASKS:
        raise CheckpointError(
            f"task {meta.get('task')!r} has no tab in this demo (tasks: {', '.join(TASKS)})"
        )
    export.require_safetensors(run_dir)
    return Adapter(
        name,
        run_dir,
        meta,
        _read_json(run_dir / "metrics.json"),
        card_body(run_dir),
        _run_max_length(run_dir),
    )


def discover(sources: list[str]) -> tuple[list[Adapter], list[Refused]]:
    """Adapters under local directories, or Hub repo ids (downloaded through nlp_transfer.hub)."""
    adapters: list[Adapter] = []
    refused: list[Refused] = []
    names: set[str] = set()
    for source in sources:
        root = Path(source).expanduser()
        try:
            if root.is_dir():
                runs = [
                    (d, d.relative_to(root).as_posix() if d != root else d.name) for d in find_run_dirs(root)
                ]
            else:
                runs = [(predict.resolve_run_dir(source), source)]  # a Hub id (raises if not one)
        except NLPTransferError as e:
            refused.append(Refused(source, str(e)))
            continue
        for run_dir, name in runs:
            while name in names:
                name += "'"
            try:
                adapters.append(read_adapter(name, run_dir))
                names.add(name)
            except NLPTransferError as e:
                refused.append(Refused(str(run_dir), str(e)))
    return adapters, refused


# --- loading -----------------------------------------------------------------------------------------


def _attach(group: BaseGroup, adapter: Adapter, index: int) -> None:
    """Add one more adapter to an already loaded base, after the same fingerprint check predict does."""
    model = group.predictor.model
    predict.check_base(adapter.meta, model.get_base_model().config, adapter.run_dir)
    peft_name = f"adapter_{index}"
    try:
        model.load_adapter(str(adapter.run_dir), adapter_name=peft_name)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"could not load the adapter in {adapter.run_dir}: {str(e).splitlines()[0][:300]}"
        ) from None
    model.eval()
    group.peft_names[adapter.name] = peft_name


def _view(group: BaseGroup, adapter: Adapter) -> Any:
    """A classifier bound to this adapter's labels and max length, sharing the group's model."""
    if adapter.task != "classification":
        return group.predictor
    return predict.ClassifierPredictor(
        group.predictor.model, group.predictor.tokenizer, adapter.labels, adapter.meta, adapter.max_length
    )


def load_all(adapters: list[Adapter], refused: list[Refused] | None = None) -> Registry:
    """Load each base model once (through predict.load_predictor, first adapter included) and attach
    the other adapters of its group; a run that fails is refused, the rest are still served."""
    registry = Registry()
    registry.refused = list(refused or [])
    groups: dict[tuple[Any, ...], BaseGroup] = {}
    for i, adapter in enumerate(adapters):
        key = adapter.group_key()
        try:
            start = time.perf_counter()
            if key in groups:
                group = groups[key]
                with group.lock:
                    _attach(group, adapter, i)
                logger.info(
                    "added adapter %s to %s in %.2f s",
                    adapter.name,
                    group.base_model,
                    time.perf_counter() - start,
                )
            else:
                group = BaseGroup(adapter.base_model, predict.load_predictor(str(adapter.run_dir)))
                group.load_s = time.perf_counter() - start
                if group.is_peft:
                    group.peft_names[adapter.name] = group.predictor.model.active_adapter
                groups[key] = group
                logger.info(
                    "loaded %s with adapter %s in %.2f s", adapter.base_model, adapter.name, group.load_s
                )
        except NLPTransferError as e:
            registry.refused.append(Refused(str(adapter.run_dir), str(e)))
            logger.warning("refused %s: %s", adapter.run_dir, e)
            continue
        group.views[adapter.name] = _view(group, adapter)
        registry.adapters[adapter.name] = adapter
        registry.groups[adapter.name] = group
    for name, adapter in registry.adapters.items():
        if adapter.task == "classification":  # the first forward pass is slow: pay it before users arrive
            classify(registry, name, "warm-up")
    return registry


@torch.no_grad()
def classify(registry: Registry, name: str, text: str) -> dict[str, float]:
    """Class probabilities for one text with adapter `name`."""
    adapter = registry.get(name, "classification")
    with registry.use(name) as predictor:
        probs = predictor.logits([text])[0].softmax(-1)
    return dict(zip(adapter.labels, map(float, probs), strict=True))
