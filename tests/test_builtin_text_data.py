"""Built-in text data from gensim's test files: Wikipedia lead pairs and the Lee news corpus.

Fast (a few seconds): parsing is cached per process, so most tests reuse one parse.
"""

from __future__ import annotations

from importlib import metadata

import pytest

from nlp_transfer.data import lee_news, wiki_lead
from nlp_transfer.errors import AssetError

try:
    lee_news.gensim_test_file(lee_news.LEE_FILE)
except AssetError:  # pragma: no cover - only on machines without gensim
    pytest.skip("gensim (and its test data) is not installed", allow_module_level=True)

TEXT_COLUMNS = ("document", "summary")
MARKUP = ("{{", "}}", "[[", "]]", "<ref", "'''", "{|", "|}", "&nbsp;", "<!--")


@pytest.fixture(scope="module")
def wiki():
    return wiki_lead.load_wiki_lead()


def _rows(dsd):
    return [row for split in dsd.values() for row in split]


# --------------------------------------------------------------------------- wiki lead


def test_wiki_splits_have_expected_sizes_and_columns(wiki):
    assert list(wiki) == ["train", "validation", "test"]
    sizes = tuple(len(wiki[s]) for s in wiki)
    assert sizes == wiki_lead.split_sizes(sum(sizes))
    assert sizes == (64, 9, 18)  # pins the parser + filters: a change here must be a deliberate one
    for split in wiki.values():
        assert split.column_names == ["title", "document", "summary"]


def test_wiki_splits_are_disjoint_by_title(wiki):
    titles = {name: set(split["title"]) for name, split in wiki.items()}
    assert all(len(titles[n]) == len(wiki[n]) for n in wiki)
    assert not titles["train"] & titles["validation"]
    assert not titles["train"] & titles["test"]
    assert not titles["validation"] & titles["test"]


def test_wiki_is_deterministic_and_seed_dependent(wiki):
    again = wiki_lead.load_wiki_lead(seed=42)
    for name in wiki:
        assert wiki[name].to_dict() == again[name].to_dict()
    other = wiki_lead.load_wiki_lead(seed=7)
    assert set(other["test"]["title"]) != set(wiki["test"]["title"])
    assert sorted(r["title"] for r in _rows(other)) == sorted(r["title"] for r in _rows(wiki))


def test_wiki_has_no_markup_left(wiki):
    for row in _rows(wiki):
        for col in TEXT_COLUMNS:
            leftovers = [m for m in MARKUP if m in row[col]]
            assert not leftovers, f"{row['title']} {col}: {leftovers}"
            assert "File:" not in row[col] and "Category:" not in row[col], row["title"]


def test_wiki_lead_is_excluded_from_document(wiki):
    for row in _rows(wiki):
        assert row["summary"] not in row["document"], row["title"]
        assert not row["document"].startswith(row["summary"][:40]), row["title"]


def test_wiki_lengths_within_thresholds(wiki):
    for row in _rows(wiki):
        n_doc, n_sum = len(row["document"].split()), len(row["summary"].split())
        assert n_doc >= wiki_lead.MIN_DOCUMENT_WORDS, row["title"]
        assert wiki_lead.MIN_SUMMARY_WORDS <= n_sum <= wiki_lead.MAX_SUMMARY_WORDS, row["title"]
        assert row["summary"].strip() == row["summary"] and row["title"]


def test_wiki_skips_redirects_disambiguation_and_lists(wiki):
    titles = {r["title"] for r in _rows(wiki)}
    assert "AccessibleComputing" not in titles  # a redirect
    assert not any("(disambiguation)" in t or t.startswith("List of") for t in titles)
    assert {"Anarchism", "Albert Einstein", "Aardvark"} <= titles


def test_strip_markup_examples():
    raw = (
        "{{Infobox|a={{nested|x}}}}'''Bold''' and ''italic'' [[Target|label]] [[Plain]]s"
        "<ref name=a>cite</ref><ref name=b/> [http://example.org site] <!-- hidden -->"
        "{{convert|5|km}} {{lang|fr|bonjour}}\n{| class=wikitable\n|-\n| cell {{x}}\n|}\n"
        "[[File:x.jpg|thumb|a [[nested]] caption]][[Category:Things]]\n== Head ==\n<b>tag</b> (, {{IPA|x}})"
    )
    assert wiki_lead.strip_markup(raw) == "Bold and italic label Plains site 5 km bonjour\nHead\ntag"


def test_split_sentences_keeps_abbreviations_and_initials():
    text = "Samuel A. Ward wrote it c. 1900 in the U.S. with Dr. Bates. It was sung in A.D. 1910. Then more."
    assert wiki_lead.split_sentences(text) == [
        "Samuel A. Ward wrote it c. 1900 in the U.S. with Dr. Bates.",
        "It was sung in A.D. 1910.",
        "Then more.",
    ]


# --------------------------------------------------------------------------- lee news


def test_lee_news_has_300_nonempty_docs():
    ds = lee_news.load_lee_news()
    assert ds.column_names == ["text"]
    assert len(ds) == lee_news.LEE_N_DOCS == 300
    assert all(t.strip() for t in ds["text"])


def test_lee_news_split_is_seeded_and_disjoint():
    a, b = lee_news.load_lee_news_split(), lee_news.load_lee_news_split(seed=42)
    assert (len(a["train"]), len(a["validation"])) == (270, 30)
    assert a["validation"]["text"] == b["validation"]["text"]
    assert not set(a["train"]["text"]) & set(a["validation"]["text"])
    other = lee_news.load_lee_news_split(seed=1)
    assert other["validation"]["text"] != a["validation"]["text"]


# --------------------------------------------------------------------------- missing gensim


@pytest.mark.parametrize(
    "loader", [wiki_lead.load_wiki_lead, lee_news.load_lee_news, lee_news.load_lee_news_split]
)
def test_missing_gensim_raises_asset_error_with_install_command(monkeypatch, loader):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(lee_news.metadata, "distribution", not_installed)
    with pytest.raises(AssetError, match="pip install gensim"):
        loader()
