"""Find finished runs, load each base model once, and switch between its adapters.

Why a registry: a demo that reloads the base model for every adapter a user picks spends seconds per
click and holds one copy of the base per adapter. Runs that share a base model (same name, task,
head size and PEFT type) are loaded into one `PeftModel` with `load_adapter(dir, adapter_name=...)`;
picking another adapter is then a `set_adapter` call (a few ms, against a quarter of a second to
seconds for a reload: benchmarks/demo_load.py). A lock per base model makes
"switch, then predict" atomic, so concurrent requests for different adapters never see each other's.

Everything here reads only what `nlp_transfer.export` wrote, through `nlp_transfer.rundir.RunDir`;
a run that cannot be served (no safetensors weights, another base model than its fingerprint says,
unreadable files) is refused with a reason instead of stopping the demo.
"""

from __future__ import annotations

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

from nlp_transfer import predict
from nlp_transfer.errors import CheckpointError, NLPTransferError
from nlp_transfer.rundir import RunDir, find_runs
from nlp_transfer.tasks.spec import SPECS

logger = logging.getLogger("nlp_transfer.demo")

# A served run is a RunDir (one type describes a run); its `name` is what users pick in the demo.
Adapter = RunDir


def group_key(run: RunDir) -> tuple[Any, ...]:
    """Runs with the same key can share one loaded base model; full fine-tunes never share."""
    if not run.is_peft:
        return ("full", str(run.path))
    return (run.task, run.base_model, run.weight_config().get("peft_type", "?"), len(run.labels))


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


def card_body(run: RunDir) -> str:
    """The model card without its YAML front matter (the Hub metadata is not for people)."""
    text = run.card_text() or ""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S).strip()


def read_adapter(name: str, run_dir: Path) -> RunDir:
    """The run at run_dir, named `name`; raises CheckpointError when the run cannot be served."""
    run = RunDir(run_dir, name=name)
    if run.task not in SPECS:
        raise CheckpointError(f"task {run.task!r} has no tab in this demo (tasks: {', '.join(SPECS)})")
    run.require_safetensors()
    run.metrics(), run.config()  # read now: a corrupt file refuses the run at start-up, not on a click
    return run


def discover(sources: list[str]) -> tuple[list[RunDir], list[Refused]]:
    """Adapters under local directories, or Hub repo ids (downloaded through nlp_transfer.hub)."""
    adapters: list[RunDir] = []
    refused: list[Refused] = []
    names: set[str] = set()
    for source in sources:
        root = Path(source).expanduser()
        try:
            if root.is_dir():
                found = [r.path for r in find_runs(root)]
                runs = [(d, d.relative_to(root).as_posix() if d != root else d.name) for d in found]
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
    predict.check_base(adapter.meta(), model.get_base_model().config, adapter.path)
    peft_name = f"adapter_{index}"
    try:
        model.load_adapter(str(adapter.path), adapter_name=peft_name)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"could not load the adapter in {adapter.path}: {str(e).splitlines()[0][:300]}"
        ) from e
    model.eval()
    group.peft_names[adapter.name] = peft_name


def _view(group: BaseGroup, adapter: Adapter) -> Any:
    """A classifier bound to this adapter's labels and max length, sharing the group's model."""
    if not SPECS[adapter.task].labelled:
        return group.predictor
    return predict.ClassifierPredictor(
        group.predictor.model, group.predictor.tokenizer, adapter.labels, adapter.meta(), adapter.max_length
    )


def load_all(adapters: list[Adapter], refused: list[Refused] | None = None) -> Registry:
    """Load each base model once (through predict.load_predictor, first adapter included) and attach
    the other adapters of its group; a run that fails is refused, the rest are still served."""
    registry = Registry()
    registry.refused = list(refused or [])
    groups: dict[tuple[Any, ...], BaseGroup] = {}
    for i, adapter in enumerate(adapters):
        key = group_key(adapter)
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
                group = BaseGroup(adapter.base_model, predict.load_predictor(str(adapter.path)))
                group.load_s = time.perf_counter() - start
                if group.is_peft:
                    group.peft_names[adapter.name] = group.predictor.model.active_adapter
                groups[key] = group
                logger.info(
                    "loaded %s with adapter %s in %.2f s", adapter.base_model, adapter.name, group.load_s
                )
        except NLPTransferError as e:
            registry.refused.append(Refused(str(adapter.path), str(e)))
            logger.warning("refused %s: %s", adapter.path, e)
            continue
        group.views[adapter.name] = _view(group, adapter)
        registry.adapters[adapter.name] = adapter
        registry.groups[adapter.name] = group
    for name, adapter in registry.adapters.items():
        if SPECS[adapter.task].labelled:  # the first forward pass is slow: pay it before users arrive
            classify(registry, name, "warm-up")
    return registry


@torch.no_grad()
def classify(registry: Registry, name: str, text: str) -> dict[str, float]:
    """Class probabilities for one text with adapter `name`."""
    adapter = registry.get(name, "classification")
    with registry.use(name) as predictor:
        probs = predictor.logits([text])[0].softmax(-1)
    return dict(zip(adapter.labels, map(float, probs), strict=True))
