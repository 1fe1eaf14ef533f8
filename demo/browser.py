"""Drive the demo page in headless Chromium: the browser tests use it, and so does taking screenshots.

    python demo/browser.py --url http://127.0.0.1:7860/ --out docs/screenshots

Why Debian's chromium and not `playwright install`: the browser comes from the system package
manager (scripts/setup_browser.sh), which works on machines that can reach only PyPI and Debian;
Playwright from PyPI drives it through `executable_path`. Gradio pages are built by JavaScript after
load, so every step waits for the element it needs instead of sleeping.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = (
    "chromium is not installed: run `sudo bash scripts/setup_browser.sh` (Debian's chromium via apt-get)"
)
TIMEOUT_MS = 120_000
LABEL = '#sentiment-label [data-testid="label-output-value"]'  # the top label of gr.Label


def chromium_path() -> str:
    """The system chromium; raises FileNotFoundError with the set-up command when it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise FileNotFoundError(MISSING)
    return path


@contextmanager
def open_page(url: str, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A page of a fresh headless profile (its own user-data dir), loaded and rendered."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="demo-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url, wait_until="networkidle")
            page.locator("#sentiment-input textarea").wait_for(state="visible")
            yield page
        finally:
            context.close()


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()


def _settled_text(page: Any, selector: str, quiet_s: float = 1.0) -> str:
    """The element's text once it is non-empty and has stopped changing (streams grow for a while)."""
    deadline, last, since = time.monotonic() + TIMEOUT_MS / 1000, None, time.monotonic()
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        value = loc.input_value() if selector.endswith("textarea") else loc.inner_text()
        if value != last:
            last, since = value, time.monotonic()
        elif value.strip() and time.monotonic() - since >= quiet_s:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{selector} stayed empty or kept changing: {last!r}")


def classify(page: Any, text: str) -> str:
    """Type a review, press Classify, and return what the label component shows."""
    open_tab(page, "Sentiment")
    page.locator("#sentiment-input textarea").fill(text)
    page.locator("#sentiment-button").click()
    page.locator("#sentiment-latency").get_by_text("Latency").wait_for()
    return _settled_text(page, LABEL)


def summarise(page: Any, text: str) -> str:
    """Paste a document, press Summarise, and return the summary once the stream has finished."""
    open_tab(page, "Summarisation")
    page.locator("#summary-input textarea").fill(text)
    page.locator("#summary-button").click()
    page.locator("#summary-latency").get_by_text("first token").wait_for()
    return _settled_text(page, "#summary-output textarea", quiet_s=2.0)


def use_example(page: Any, tab: str, textbox: str, index: int = 0) -> str:
    """Click one of the tab's examples (from the built-in test splits); returns the text it filled in."""
    open_tab(page, tab)
    page.locator("button.gallery-item").locator("visible=true").nth(index).click()
    return _settled_text(page, f"{textbox} textarea", quiet_s=0.5)


def capture(url: str, out: Path, summaries: bool = True) -> list[Path]:
    """One screenshot per tab, each after a real request: what docs/screenshots shows."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []

    def shoot(name: str) -> None:
        shots.append(out / name)
        page.screenshot(path=shots[-1], full_page=True)

    with open_page(url) as page:
        use_example(page, "Sentiment", "#sentiment-input", 1)
        page.locator("#sentiment-button").click()
        page.locator("#sentiment-latency").get_by_text("Latency").wait_for()
        _settled_text(page, LABEL)
        shoot("sentiment.png")

        use_example(page, "Summarisation", "#summary-input", 0)
        page.locator("#summary-button").click()
        page.locator("#summary-latency").get_by_text("first token").wait_for()
        _settled_text(page, "#summary-output textarea", quiet_s=3.0)
        shoot("summarisation.png")

        open_tab(page, "Compare")
        page.locator("#compare-sentiment-input textarea").fill(
            "A tedious, overlong film that wastes a fine cast."
        )
        page.locator("#compare-sentiment-button").click()
        page.locator("#compare-sentiment-table").get_by_text("latency").wait_for()
        time.sleep(1)
        shoot("compare.png")

        if summaries:  # an adapter against the untuned base on one article
            page.get_by_role("tab", name="Summarisation", exact=True).last.click()
            page.locator("button.gallery-item").locator("visible=true").first.click()
            _settled_text(page, "#compare-summary-input textarea", quiet_s=0.5)
            page.locator("#compare-summary-button").click()
            page.locator("#compare-summary-b-out textarea").wait_for()
            _settled_text(page, "#compare-summary-b-out textarea", quiet_s=3.0)
            shoot("compare_summaries.png")
    return shots


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Screenshot each tab of a running demo.")
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument(
        "--no-summaries", action="store_true", help="skip the summary comparison (slow on a CPU)"
    )
    args = parser.parse_args()
    for shot in capture(args.url, args.out, not args.no_summaries):
        print(shot)
