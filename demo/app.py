"""Gradio demo serving trained nlp-transfer adapters: sentiment, summarisation and a side-by-side view.

    python demo/app.py --adapters runs [more dirs or Hub ids ...] [--host 127.0.0.1 --port 7860]

Why it is built this way (details in demo/README.md):
- adapters are discovered and loaded by demo/registry.py: one base model per group, adapters switched
  with PEFT's set_adapter, runs that cannot be served refused at start-up with the reason;
- serving is conservative by default: 127.0.0.1, analytics off, a bounded queue with a concurrency
  limit, inputs checked for emptiness and length before they reach a model;
- every UI action is also an API endpoint with a fixed api_name, so scripts get what the page shows.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check
ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as `python demo/app.py`
    sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402

from demo import registry as reg  # noqa: E402
from demo.handlers import (  # noqa: E402
    MAX_NEW_TOKENS,
    SENTIMENT_TASK,
    SUMMARY_TASK,
    ZERO_SHOT,
    Handlers,
    Settings,
    no_adapter_hint,
    status,
    zero_shot_bases,
)
from nlp_transfer.tasks.spec import task_spec  # noqa: E402

logger = logging.getLogger("nlp_transfer.demo")


def picker(label: str, choices: list[tuple[str, str]], elem_id: str, index: int = 0) -> gr.Dropdown:
    value = choices[min(index, len(choices) - 1)][1] if choices else None
    return gr.Dropdown(choices=choices, value=value, label=label, elem_id=elem_id, interactive=True)


def load_examples(settings: Settings) -> tuple[list[str], list[str]]:
    """Reviews and documents from the built-in test splits (documents cut to ~250 words to fit a prompt)."""
    if not settings.examples:
        return [], []
    reviews: list[str] = []
    documents: list[str] = []
    try:
        from nlp_transfer.data import rotten_tomatoes

        reviews = list(rotten_tomatoes.load()["test"]["text"][:6])
    except Exception as e:  # examples are a convenience: a missing asset must not stop the demo
        logger.warning("no sentiment examples: %s", e)
    try:
        from nlp_transfer.data import wiki_lead

        documents = [
            " ".join(doc.split()[:250]) for doc in wiki_lead.load_wiki_lead()["test"]["document"][:3]
        ]
    except Exception as e:
        logger.warning("no summarisation examples: %s", e)
    return reviews, documents


# fmt: off
def choices(registry: reg.Registry, task: str) -> list[tuple[str, str]]:
    """Picker entries: (shown text, value the API takes)."""
    return [(f"{n}  ({a.method}, {a.base_model})", n) for n, a in registry.adapters.items() if a.task == task]


def sentiment_tab(h: Handlers, options: list[tuple[str, str]], reviews: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Review", lines=4, placeholder="Type a movie review", elem_id="sentiment-input")
            adapter = picker("Adapter", options, "sentiment-adapter")
            button = gr.Button("Classify", variant="primary", elem_id="sentiment-button")
            if reviews:
                gr.Examples([[r] for r in reviews], inputs=[text], label="Reviews from the Rotten Tomatoes test split")
        with gr.Column():
            label = gr.Label(label="Label and class probabilities", elem_id="sentiment-label")
            took = gr.Markdown(elem_id="sentiment-latency")
            info = gr.Markdown(h.info(adapter.value)[0], elem_id="sentiment-info")
            with gr.Accordion("Model card", open=False):
                card = gr.Markdown(h.info(adapter.value)[1])
    button.click(h.classify, [text, adapter], [label, info, took], api_name="classify",
                 api_description="Sentiment of one text: (label probabilities, adapter description, latency).")
    adapter.change(h.info, [adapter], [info, card], api_visibility="private")


def summarisation_tab(h: Handlers, options: list[tuple[str, str]], documents: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Document", lines=10, placeholder="Paste an article", elem_id="summary-input")
            adapter = picker("Adapter", options, "summary-adapter")
            tokens = gr.Slider(8, MAX_NEW_TOKENS, value=80, step=8, label="Max new tokens (summary length)")
            button = gr.Button("Summarise", variant="primary", elem_id="summary-button")
            if documents:
                gr.Examples([[d] for d in documents], inputs=[text], label="Articles from the Wikipedia-lead test split (first 250 words)")
        with gr.Column():
            summary = gr.Textbox(label="Summary (streamed)", lines=6, elem_id="summary-output")
            took = gr.Markdown(elem_id="summary-latency")
            info = gr.Markdown(h.info(adapter.value)[0], elem_id="summary-info")
            with gr.Accordion("Model card", open=False):
                card = gr.Markdown(h.info(adapter.value)[1])
    button.click(h.summarise, [text, adapter, tokens], [summary, info, took], api_name="summarise",
                 api_description="Summary of one document, streamed: (summary so far, adapter description, latency).")
    adapter.change(h.info, [adapter], [info, card], api_visibility="private")


def compare_tab(h: Handlers, sentiment: list[tuple[str, str]], summarisers: list[tuple[str, str]], reviews: list[str], documents: list[str]) -> None:
    gr.Markdown("The same input through two adapters (or an adapter and the untuned base), side by side.")
    with gr.Tab(task_spec(SENTIMENT_TASK).demo_tab):
        text = gr.Textbox(label="Review", lines=3, elem_id="compare-sentiment-input")
        with gr.Row():
            a, b = picker("Adapter A", sentiment, "compare-sentiment-a"), picker("Adapter B", sentiment, "compare-sentiment-b", 1)
        button = gr.Button("Compare", variant="primary", elem_id="compare-sentiment-button")
        with gr.Row():
            label_a, label_b = gr.Label(label="A"), gr.Label(label="B")
        table = gr.Markdown(elem_id="compare-sentiment-table")
        if reviews:
            gr.Examples([[r] for r in reviews], inputs=[text])
        button.click(h.compare_sentiment, [text, a, b], [label_a, label_b, table], api_name="compare_sentiment",
                     api_description="One text through two sentiment adapters: (probabilities A, probabilities B, comparison table).")
    with gr.Tab(task_spec(SUMMARY_TASK).demo_tab):
        text = gr.Textbox(label="Document", lines=6, elem_id="compare-summary-input")
        with gr.Row():
            a, b = picker("Summariser A", summarisers, "compare-summary-a"), picker("Summariser B", summarisers, "compare-summary-b", 1)
        tokens = gr.Slider(8, MAX_NEW_TOKENS, value=80, step=8, label="Max new tokens")
        button = gr.Button("Compare", variant="primary", elem_id="compare-summary-button")
        with gr.Row():
            summary_a, summary_b = gr.Textbox(label="A", lines=6, elem_id="compare-summary-a-out"), gr.Textbox(label="B", lines=6, elem_id="compare-summary-b-out")
        table = gr.Markdown()
        if documents:
            gr.Examples([[d] for d in documents], inputs=[text])
        button.click(h.compare_summaries, [text, a, b, tokens], [summary_a, summary_b, table], api_name="compare_summaries",
                     api_description="One document through two summarisers (adapter names or 'zero-shot:<base>'): (summary A, summary B, comparison table).")


def build_app(registry: reg.Registry, settings: Settings) -> gr.Blocks:
    """The page: status banner, Sentiment, Summarisation and Compare tabs; every action an endpoint."""
    h = Handlers(registry, settings)
    reviews, documents = load_examples(settings)
    sentiment = choices(registry, SENTIMENT_TASK)
    summarisers = choices(registry, SUMMARY_TASK)
    summarisers += [(f"{b}  (zero-shot base)", ZERO_SHOT + b) for b in zero_shot_bases(registry, settings)]
    with gr.Blocks(title="nlp-transfer demo", analytics_enabled=False) as demo:
        gr.Markdown("# nlp-transfer demo\nFine-tuned adapters for sentiment and summarisation, served from local runs.")
        gr.Markdown(status(registry, settings), elem_id="status")
        sentiment_title, summary_title = task_spec(SENTIMENT_TASK).demo_tab, task_spec(SUMMARY_TASK).demo_tab
        with gr.Tabs():
            with gr.Tab(sentiment_title, id=sentiment_title.lower()):
                sentiment_tab(h, sentiment, reviews)
            with gr.Tab(summary_title, id=summary_title.lower()):
                summarisation_tab(h, summarisers, documents)
            with gr.Tab("Compare", id="compare"):
                compare_tab(h, sentiment, summarisers, reviews, documents)
        gr.api(h.adapters, api_name="adapters",
               api_description="Every adapter name the endpoints accept, with task, base model, method and test metrics.")
    return demo
# fmt: on


# --- command line ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description="Serve trained nlp-transfer adapters in a Gradio demo.")
    p.add_argument(
        "--adapters",
        nargs="+",
        default=["runs"],
        metavar="DIR_OR_HUB_ID",
        help="directories searched for finished runs, or Hub repo ids (default: runs)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the demo to your network)",
    )
    p.add_argument("--port", type=int, default=None, help="default: 7860, or the next free port after it")
    p.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="requests run at once; the rest wait in the queue (default 2)",
    )
    p.add_argument(
        "--max-queue", type=int, default=100, help="requests that may wait; more are refused (default 100)"
    )
    p.add_argument(
        "--max-chars", type=int, default=4000, help="longest accepted input in characters (default 4000)"
    )
    p.add_argument(
        "--zero-shot-base",
        default="smollm2-135m",
        help="untuned summariser offered next to the adapters, loaded on first use; 'none' to hide",
    )
    p.add_argument(
        "--no-examples", action="store_true", help="skip loading examples from the built-in test splits"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: CPU cores // concurrency)"
    )
    a = p.parse_args(argv)
    zero = None if a.zero_shot_base.lower() == "none" else a.zero_shot_base
    return Settings(
        a.adapters,
        a.host,
        a.port,
        a.concurrency,
        a.max_queue,
        a.max_chars,
        zero,
        not a.no_examples,
        a.threads,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    settings = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the base's "classifier MISSING" load report: the adapter brings the head
    import torch

    torch.set_num_threads(settings.torch_threads())
    logger.info(
        "%d torch thread(s) per request, %d request(s) at once",
        settings.torch_threads(),
        settings.concurrency,
    )
    adapters, refused = reg.discover(settings.sources)
    registry = reg.load_all(adapters, refused)
    for r in registry.refused:
        print(f"refused {r.source}: {r.reason}", file=sys.stderr)
    for task in (SENTIMENT_TASK, SUMMARY_TASK):
        if not registry.names(task):
            print(no_adapter_hint(task, settings.sources), file=sys.stderr)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: binding {settings.host}: anyone who can reach this machine can use the demo",
            file=sys.stderr,
        )
    demo = build_app(registry, settings)
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.max_queue)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        ssr_mode=False,
        mcp_server=False,
        footer_links=["api"],
        show_error=False,
    )


if __name__ == "__main__":
    main()
