"""The demo page in a real browser: headless Debian chromium driven by Playwright (demo/browser.py).

Not skipped when chromium is missing: CI installs it with scripts/setup_browser.sh, so a missing
browser is a broken set-up and fails with the command that fixes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_demo import DOCUMENT, serve, tiny_runs

from demo import browser

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict, review_csv: Path) -> Iterator[str]:
    try:
        browser.chromium_path()
    except FileNotFoundError as e:
        pytest.fail(str(e))
    runs = tiny_runs(tmp_path_factory, tiny_models, review_csv)
    log = tmp_path_factory.mktemp("demo_browser") / "demo.log"
    yield from serve(runs, log)  # with examples from the built-in test splits, as users see it


def test_type_a_review_and_a_document_and_read_the_results(page_url: str, tmp_path: Path) -> None:
    with browser.open_page(page_url) as page:
        label = browser.classify(page, "the cast was great and the story moving")
        assert label in ("negative", "positive")
        page.screenshot(path=tmp_path / "sentiment.png", full_page=True)

        summary = browser.summarise(page, DOCUMENT)
        assert summary.strip()
        page.screenshot(path=tmp_path / "summarisation.png", full_page=True)

        example = browser.use_example(page, "Sentiment", "#sentiment-input", 0)
        assert len(example.split()) > 3, "examples come from the Rotten Tomatoes test split"
    for name in ("sentiment.png", "summarisation.png"):
        assert (tmp_path / name).stat().st_size > 10_000, f"{name} looks blank"
