"""What each button (and API endpoint) does: check the input, pick the adapter, run, describe.

Kept apart from the page layout (demo/app.py) so the behaviour can be read, and tested, without
Gradio's layout code. Errors users can fix are raised as `gr.Error` with a message that says how;
Gradio shows them in the page and returns them to API clients as the error text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from demo import registry as reg
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.tasks.spec import SPECS, task_spec

ROOT = Path(__file__).resolve().parent.parent
ZERO_SHOT = "zero-shot:"  # picker value prefix for an untuned base model
MAX_NEW_TOKENS = 256


@dataclass
class Settings:
    """Command-line choices (see `python demo/app.py --help`); the defaults are the safe ones."""

    sources: list[str] = field(default_factory=lambda: ["runs"])
    host: str = "127.0.0.1"
    port: int | None = None  # None: 7860 or the next free port
    concurrency: int = 2
    max_queue: int = 100
    max_chars: int = 4000
    zero_shot_base: str | None = "smollm2-135m"
    examples: bool = True
    threads: int | None = None  # torch threads per process; None: CPU cores // concurrency

    def torch_threads(self) -> int:
        """Requests run side by side, so each gets its share of the cores: on a busy 2-core machine, two
        requests with 2 threads each made a MiniLM forward 10-100x slower (threads waiting on threads)."""
        return self.threads or max(1, (os.cpu_count() or 1) // max(1, self.concurrency))


# --- request handling ------------------------------------------------------------------------------


def check_text(text: str | None, max_chars: int) -> str:
    """Refuse empty and over-long inputs with a message the user can act on (never silently cut)."""
    text = (text or "").strip()
    if not text:
        raise gr.Error("The input is empty: type or paste some text first.", title="Empty input")
    if len(text) > max_chars:
        raise gr.Error(
            f"The input has {len(text):,} characters; this demo accepts at most {max_chars:,} "
            "(the server's --max-chars setting). Shorten it and try again.",
            title="Input too long",
        )
    return text


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{value[0]:.3f}–{value[1]:.3f}"
    return str(value)


def task_of_tab(tab: str) -> str:
    """The task a tab of this page serves (each task names its `demo_tab` in tasks/spec.py)."""
    return next(spec.name for spec in SPECS.values() if spec.demo_tab == tab)


SENTIMENT_TASK = task_of_tab("Sentiment")  # the two task tabs demo/app.py builds
SUMMARY_TASK = task_of_tab("Summarisation")


def _metric_rows(test: dict[str, Any], task: str, prefix: str = "test") -> dict[str, str]:
    return {
        f"{prefix} {label}": fmt(test[key]) for key, label in task_spec(task).shown_metrics if key in test
    }


def facts(choice: str, registry: reg.Registry) -> dict[str, str]:
    """Base model, method and test metrics of an adapter (from its metrics.json) or a zero-shot base."""
    if choice.startswith(ZERO_SHOT):
        base = choice[len(ZERO_SHOT) :]
        out = {"base model": f"`{base}`", "method": "none: the untuned base, same prompt as the adapters"}
        for adapter in registry.adapters.values():  # a summarisation run scores its base before training
            zero = adapter.test_metrics.get("zero_shot") or {}
            if adapter.task == SUMMARY_TASK and adapter.base_model == base and zero:
                return {**out, **_metric_rows(zero, SUMMARY_TASK), "measured by": f"`{adapter.name}`"}
        return {**out, "test metrics": "none recorded"}
    adapter = registry.adapters[choice]
    out = {"base model": f"`{adapter.base_model}`", "method": f"`{adapter.method}`"}
    out.update(
        _metric_rows(adapter.test_metrics, adapter.task) or {"test metrics": "none saved with this run"}
    )
    zero = adapter.test_metrics.get("zero_shot") or {}
    if "rougeL" in zero:
        out["zero-shot base, test ROUGE-L"] = fmt(zero["rougeL"])
    return out


def describe(choice: str, registry: reg.Registry) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in facts(choice, registry).items())
    return f"| adapter | **{choice}** |\n|---|---|\n{rows}"


def side_by_side(a: str, b: str, registry: reg.Registry, latency_a: str, latency_b: str) -> str:
    """One table, A and B in columns: what a comparison is for."""
    fa = {**facts(a, registry), "latency": latency_a.removeprefix("Latency: ")}
    fb = {**facts(b, registry), "latency": latency_b.removeprefix("Latency: ")}
    rows = "\n".join(f"| {k} | {fa.get(k, '')} | {fb.get(k, '')} |" for k in dict.fromkeys([*fa, *fb]))
    return f"| | A: **{a}** | B: **{b}** |\n|---|---|---|\n{rows}"


def latency(seconds: float, first_token_s: float | None = None, note: str = "") -> str:
    first = f", first token after {first_token_s * 1000:.0f} ms" if first_token_s is not None else ""
    return f"Latency: {seconds * 1000:.1f} ms{first}{note}"


class Handlers:
    """The functions behind the buttons; the same functions are the API endpoints."""

    def __init__(self, registry: reg.Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    def _adapter(self, name: str | None, task: str) -> reg.Adapter:
        if not self.registry.names(task):
            raise gr.Error(no_adapter_hint(task, self.settings.sources), title=f"No {task} adapter loaded")
        try:
            return self.registry.get(name or "", task)
        except NLPTransferError as e:
            raise gr.Error(str(e)) from e

    def info(self, choice: str | None) -> tuple[str, str]:
        """Description and model card for a picker's current choice."""
        if not choice or (choice not in self.registry.adapters and not choice.startswith(ZERO_SHOT)):
            return "", ""
        adapter = self.registry.adapters.get(choice)
        return describe(choice, self.registry), reg.card_body(adapter) if adapter else ""

    def classify(self, text: str, adapter: str) -> tuple[dict[str, float], str, str]:
        """Label probabilities, adapter description and latency for one review."""
        text = check_text(text, self.settings.max_chars)
        chosen = self._adapter(adapter, SENTIMENT_TASK)
        start = time.perf_counter()
        probs = reg.classify(self.registry, chosen.name, text)
        return probs, describe(chosen.name, self.registry), latency(time.perf_counter() - start)

    def _summariser(self, choice: str) -> tuple[AbstractContextManager[Any], str]:
        """The summariser to run and a note for the latency (a zero-shot base may load on first use)."""
        if choice and choice.startswith(ZERO_SHOT):
            base = choice[len(ZERO_SHOT) :]
            if base not in zero_shot_bases(self.registry, self.settings):
                raise gr.Error(f"{base!r} is not offered as a zero-shot base here")
            note = (
                "" if self.registry.zero_shot_ready(base) else " (includes loading the base model: first use)"
            )
            return self.registry.zero_shot(base), note
        chosen = self._adapter(choice, SUMMARY_TASK)
        return self.registry.use(chosen.name), ""

    def _stream(self, text: str, choice: str, max_new_tokens: float) -> Iterator[tuple[str, str]]:
        """(summary so far, latency) as tokens arrive; the last item is the finished summary."""
        n = int(max_new_tokens or 0)
        if not 1 <= n <= MAX_NEW_TOKENS:
            raise gr.Error(f"max new tokens must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens}")
        session, note = self._summariser(choice)
        start, first, summary = time.perf_counter(), None, ""
        with session as summariser:
            for summary in summariser.stream(text, max_new_tokens=n):
                if first is None and summary:
                    first = time.perf_counter() - start
                yield summary, latency(time.perf_counter() - start, first, note)
        yield summary, latency(time.perf_counter() - start, first, note)

    def summarise(
        self, text: str, adapter: str, max_new_tokens: float = 80
    ) -> Iterator[tuple[str, str, str]]:
        """The summary, streamed as it grows, with the adapter's ROUGE and the latency."""
        text = check_text(text, self.settings.max_chars)
        for summary, took in self._stream(text, adapter, max_new_tokens):  # validates `adapter` first
            yield summary, describe(adapter, self.registry), took

    def compare_sentiment(
        self, text: str, adapter_a: str, adapter_b: str
    ) -> tuple[dict[str, float], dict[str, float], str]:
        """The same review through two adapters, and a table of both adapters' facts and latencies."""
        a, _, lat_a = self.classify(text, adapter_a)
        b, _, lat_b = self.classify(text, adapter_b)
        return a, b, side_by_side(adapter_a, adapter_b, self.registry, lat_a, lat_b)

    def compare_summaries(
        self, text: str, adapter_a: str, adapter_b: str, max_new_tokens: float = 80
    ) -> Iterator[tuple[str, str, str]]:
        """The same document through two summarisers (adapters or a zero-shot base), A then B."""
        text = check_text(text, self.settings.max_chars)
        a = lat_a = b = lat_b = ""
        for a, lat_a in self._stream(text, adapter_a, max_new_tokens):
            yield a, "", side_by_side(adapter_a, adapter_b, self.registry, lat_a, "waiting")
        for b, lat_b in self._stream(text, adapter_b, max_new_tokens):
            yield a, b, side_by_side(adapter_a, adapter_b, self.registry, lat_a, lat_b)

    def adapters(self) -> list[dict[str, Any]]:
        """Every loaded adapter (and zero-shot base), with what the pickers and endpoints accept."""
        out = [
            {
                "name": a.name,
                "task": a.task,
                "base_model": a.base_model,
                "method": a.method,
                "test_metrics": a.test_metrics,
            }
            for a in self.registry.adapters.values()
        ]
        for base in zero_shot_bases(self.registry, self.settings):
            out.append(
                {
                    "name": ZERO_SHOT + base,
                    "task": SUMMARY_TASK,
                    "base_model": base,
                    "method": "zero-shot",
                    "test_metrics": {},
                }
            )
        return out


# --- what the page says about missing adapters ------------------------------------------------------


def zero_shot_bases(registry: reg.Registry, settings: Settings) -> list[str]:
    """Loaded summarisation bases (free: adapters disabled) plus --zero-shot-base (loaded on first use)."""
    bases = registry.base_models(SUMMARY_TASK)
    if settings.zero_shot_base and settings.zero_shot_base not in bases:
        bases.append(settings.zero_shot_base)
    return bases


def train_command(task: str) -> str:
    """The shortest command that trains an adapter the demo can serve."""
    if task == SENTIMENT_TASK:
        return "python recipes/classify.py --config recipes/configs/sentiment_minilm_lora.yaml"
    recipes = sorted((ROOT / "recipes").glob("summari[sz]e*.py"))
    configs = sorted((ROOT / "recipes" / "configs").glob("summari*lora*.yaml"))
    if recipes and configs:
        return f"python recipes/{recipes[0].name} --config recipes/configs/{configs[0].name}"
    return f"nlp-transfer train --task {task} --model smollm2-135m --method lora --dataset wiki_lead"


def no_adapter_hint(task: str, sources: list[str]) -> str:
    return (
        f"No {task} adapter was found under {', '.join(sources)}. Train one with `{train_command(task)}`, "
        f"then restart the demo: `python demo/app.py --adapters {' '.join(sources)}`."
    )


def status(registry: reg.Registry, settings: Settings) -> str:
    """The banner: what is served, what was refused and why, and how to train what is missing."""
    lines = []
    groups = {id(g): g for g in registry.groups.values()}
    if registry.adapters:
        lines.append(
            f"Serving **{len(registry.adapters)}** adapter(s) on **{len(groups)}** loaded model(s) from `{', '.join(settings.sources)}`."
        )
    for task in (SENTIMENT_TASK, SUMMARY_TASK):
        if not registry.names(task):
            lines.append(f"- {no_adapter_hint(task, settings.sources)}")
    if not registry.names(SUMMARY_TASK) and settings.zero_shot_base:
        lines.append(
            f"- Meanwhile the {task_spec(SUMMARY_TASK).demo_tab} tab offers the untuned base `{settings.zero_shot_base}` (zero-shot)."
        )
    lines += [f"- **Refused** `{r.source}`: {r.reason}" for r in registry.refused]
    return "\n".join(lines)
