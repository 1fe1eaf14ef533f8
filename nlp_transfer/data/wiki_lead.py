"""Wikipedia lead summarisation pairs built from the small enwiki dump shipped in gensim's test data.

Why: no summarisation dataset (and no network) is available here, yet the toolkit needs a real
document -> summary task for decoder fine-tuning. Wikipedia's lead section is a human-written summary
of the article, so (article body -> first lead sentences) is a usable, if imperfect, pair.

Source
    ``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``:
    206 pages from the start of an English Wikipedia articles dump (MediaWiki 1.27 export, page ids
    10-30302, titles mostly starting with "A"; revision timestamps 2003-2016, 100 of them from 2016).
    Read with ``bz2`` + ``xml.etree.ElementTree.iterparse``; bytes are decoded as UTF-8 with errors
    replaced (the file is documented as not always UTF-8 clean; the copy in gensim 4.4 decodes cleanly).

Pages kept
    Main namespace only. Skipped: redirects (``<redirect>`` element or ``#REDIRECT`` text; 99),
    disambiguation pages (title "(disambiguation)" or a disambiguation/set-index template; 7) and
    "List of ..." pages (2), whose bodies are lists, not prose. That leaves 96 articles.

Pairs
    * ``summary``: the lead (text before the first ``== heading ==``), cleaned, then cut to its first
      sentence, plus the second if both together are <= ``SUMMARY_TWO_SENTENCE_MAX`` (60) words. A
      whole lead (median ~200 words) is too long a target for a small model; one or two sentences are
      the "X is a ..." definition plus its key fact (same recipe as the probe in FACTS.md). The
      sentence splitter never breaks after common abbreviations or initials ("c.", "Dr.", "U.S.").
    * ``document``: the full cleaned body after the lead, never truncated (tasks truncate to their
      context). Trailing reference-like sections (See also, References, Notes, External links,
      Further reading, Bibliography, ...) are cut: they are link lists, not prose. Section headings
      are kept as plain lines; lines (paragraphs, headings, list items) are separated by ``\n``.

Cleaning (regex, no external parser; :func:`strip_markup`)
    comments; ``<ref>..</ref>`` and ``<ref/>``; non-prose tags with their content (math, gallery,
    timeline, source, syntaxhighlight, score, imagemap, chem, hiero); templates ``{{..}}``, nested
    ones innermost first -- a few inline templates keep their visible text (``{{convert|29|km}}`` ->
    "29 km", ``{{lang|grc|..}}``, ``{{nowrap|..}}``, ``{{ndash}}``, ...), all others (citations,
    infoboxes, hatnotes, pronunciations, navboxes) are dropped; tables ``{| .. |}`` incl. nested;
    ``[[File:/Image:/Category:..]]`` (captions too) and interlanguage links; ``[[a|b]] -> b``,
    ``[[a]]s -> as``; ``[http://x label] -> label``; bold/italic quotes; list markers; heading
    ``=`` signs; remaining HTML tags; HTML entities; empty or punctuation-only brackets left by
    removed templates ("Aristotle (, ..." -> "Aristotle (..."); whitespace collapsed within lines.
    Known leftovers: text from rarer templates is lost (e.g. "( years ago)" from ``{{age}}``).

Filters (words = whitespace tokens)
    ``document`` >= ``MIN_DOCUMENT_WORDS`` (200) and ``summary`` in ``[MIN_SUMMARY_WORDS,
    MAX_SUMMARY_WORDS]`` (10..80). They drop 5 of the 96 articles (4 short bodies, 1 four-word lead).
    The 80-word cap never binds with the 1-2 sentence rule (longest summary: 60 words); it guards
    against a lead with no sentence break.

Split (default seed 42)
    91 pairs -> train 64 / validation 9 / test 18 (70/10/20, rounded; test takes the remainder), by a
    ``random.Random(seed)`` shuffle of the pairs in dump order. Same file + seed -> same split; another
    seed gives another split of the same 91 pairs. Words: document median 3,709 (248..13,831),
    summary median 42 (14..60).

Limits
    An old, tiny snapshot (2016-era text, articles starting with "A"; the pretrained model has probably
    seen these or newer versions). The test split has only 18 examples: report ROUGE with a bootstrap
    confidence interval and the number of examples it rests on. The lead summarises the *whole*
    article while documents run to thousands of words, so a source truncated to a small context may
    not contain the facts in the target; a "first k words of the document" baseline is the floor to beat.
"""

from __future__ import annotations

import bz2
import html
import io
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value

from nlp_transfer.data.lee_news import gensim_test_file
from nlp_transfer.errors import DataError

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

MIN_DOCUMENT_WORDS = 200
MIN_SUMMARY_WORDS = 10
MAX_SUMMARY_WORDS = 80
SUMMARY_TWO_SENTENCE_MAX = 60
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
SPLITS = ("train", "validation", "test")

FEATURES = Features({"title": Value("string"), "document": Value("string"), "summary": Value("string")})


@dataclass(frozen=True)
class Page:
    """One main-namespace page as stored in the dump."""

    title: str
    text: str
    is_redirect: bool


# --------------------------------------------------------------------------- reading the dump


def _local(tag: str) -> str:
    """Tag name without the MediaWiki export namespace."""
    return tag.rsplit("}", 1)[-1]


def iter_pages(path: Path) -> list[Page]:
    """Main-namespace pages in dump order; decoded with errors replaced (not always clean UTF-8)."""
    with bz2.open(path, "rb") as fh:
        raw = fh.read().decode("utf-8", errors="replace").encode("utf-8")
    pages: list[Page] = []
    fields: dict[str, str] = {}
    redirect = False
    for _event, elem in ET.iterparse(io.BytesIO(raw), events=("end",)):
        name = _local(elem.tag)
        if name in ("title", "ns", "text"):
            fields[name] = elem.text or ""
        elif name == "redirect":
            redirect = True
        elif name == "page":
            if fields.get("ns", "0") == "0":
                pages.append(Page(fields.get("title", ""), fields.get("text", ""), redirect))
            fields, redirect = {}, False
            elem.clear()
    return pages


_DISAMBIG_RE = re.compile(
    r"\{\{\s*(disambig\w*|dab|hndis|geodis|numberdis|letter-numbercombdisambig|set index)\s*[|}]", re.I
)


def is_article(page: Page) -> bool:
    """False for redirects, disambiguation pages and lists, which have no summary/prose-body structure."""
    if page.is_redirect or page.text.lstrip().upper().startswith("#REDIRECT"):
        return False
    title = page.title.lower()
    if "(disambiguation)" in title or title.startswith("list of"):
        return False
    return not _DISAMBIG_RE.search(page.text)


# --------------------------------------------------------------------------- markup stripping

_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_REF_RE = re.compile(r"<ref\b[^>]*?/>|<ref\b[^>]*>.*?</ref\s*>", re.S | re.I)
_DROP_TAGS = "math|gallery|timeline|source|syntaxhighlight|score|imagemap|chem|hiero|references"
_DROP_TAG_RE = re.compile(rf"<({_DROP_TAGS})\b[^>]*?(?:/>|>.*?</\1\s*>)", re.S | re.I)
_TEMPLATE_RE = re.compile(r"\{\{(?:(?!\{\{|\}\}).)*\}\}", re.S)
_TABLE_RE = re.compile(r"\{\|(?:(?!\{\||\|\}).)*\|\}", re.S)
_LINK_RE = re.compile(r"\[\[((?:(?!\[\[|\]\]).)*)\]\]", re.S)
_DROP_LINK_RE = re.compile(r"^\s*:?\s*(file|image|media|category)\s*:", re.I)
_INTERLANG_RE = re.compile(r"^\s*[a-z]{2,3}(?:-[a-z]+)*\s*:")
_EXT_LINK_RE = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]]*)\]")
_QUOTES_RE = re.compile(r"'{2,}")
_HEADING_RE = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
_TAG_RE = re.compile(r"</?[a-zA-Z][^<>]*?/?>")
_MAGIC_RE = re.compile(r"__[A-Z]+__")
_EMPTY_PARENS_RE = re.compile(r"\([ \t,;:]*\)")
_LEADING_PUNCT_PARENS_RE = re.compile(r"\([ \t]*(?:[,;:][ \t]*)+")
_TRAILING_PUNCT_PARENS_RE = re.compile(r"(?:[ \t]*[,;:])+[ \t]*\)")
_DOUBLE_PUNCT_RE = re.compile(r"([,;:])(?:[ \t]*[,;:])+(?=\s)")
_SPACE_AFTER_PAREN_RE = re.compile(r"([(\[])[ \t]+")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"[ \t]+([,.;:!?)])")
_LIST_MARKER_RE = re.compile(r"^[*#:;]+\s*", re.M)
_LEFTOVER_RE = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}")


def _remove_nested(pattern: re.Pattern[str], text: str) -> str:
    """Remove innermost matches until none are left, so nested constructs go from inside out."""
    while True:
        text, n = pattern.subn("", text)
        if n == 0:
            return text


_TEXT_TEMPLATES = frozenset("small smaller big nowrap nobr sic nts val angbr".split())
_SYMBOL_TEMPLATES = {
    "ndash": "–",
    "mdash": "—",
    "snd": " – ",
    "spnd": " – ",
    "nbsp": " ",
    "'s": "'s",
    "'": "'",
}
_RANGE_WORDS = frozenset("to - – and or by x".split())


def _render_template(match: re.Match[str]) -> str:
    """Inline templates whose text is part of the sentence (convert, lang, nowrap, ...) keep their
    visible text; every other template (citations, infoboxes, hatnotes, navboxes) is dropped."""
    name, *args = match.group(0)[2:-2].split("|")
    name = name.strip().lower()
    pos = [a.strip() for a in args if "=" not in a]
    if name in _SYMBOL_TEMPLATES:
        return _SYMBOL_TEMPLATES[name]
    if not pos:
        return ""
    if name in ("convert", "cvt"):
        ranged = len(pos) >= 4 and pos[1] in _RANGE_WORDS
        return " ".join(pos[:4] if ranged else pos[:2])
    if name in ("lang", "transl"):  # {{lang|grc|Φοῖβος}}, {{transl|grc|Phoibos}}: text is the last argument
        return pos[-1] if len(pos) >= 2 else ""
    if name.startswith("lang-") or name == "nihongo" or name in _TEXT_TEMPLATES:
        return pos[0]
    if name == "as of":
        return f"As of {pos[0]}"
    if name == "chem":
        return "".join(pos)
    if name == "frac":
        return "/".join(pos)
    return ""


def _render_templates(text: str) -> str:
    """Innermost templates first, so a template nested in an argument is resolved before its parent."""
    while True:
        text, n = _TEMPLATE_RE.subn(_render_template, text)
        if n == 0:
            return text


def _link_text(match: re.Match[str]) -> str:
    """Visible text of an internal link; file, category and interlanguage links vanish."""
    inner = match.group(1)
    if _DROP_LINK_RE.match(inner):
        return ""
    target, _, label = inner.partition("|")
    if label:
        return label.rsplit("|", 1)[-1] if "|" in label else label
    if _INTERLANG_RE.match(target):
        return ""
    return target.lstrip(":")


def _replace_links(text: str) -> str:
    """Innermost links first, so [[File:x|a [[b]] caption]] is seen whole once [[b]] is resolved."""
    while True:
        text, n = _LINK_RE.subn(_link_text, text)
        if n == 0:
            return text


def _normalise_lines(text: str) -> str:
    """Collapse whitespace inside lines and drop empty lines; paragraphs stay separated by ``\\n``."""
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def strip_markup(text: str) -> str:
    """Wiki markup -> plain text (see the module docstring for the exact steps)."""
    text = _COMMENT_RE.sub("", text)
    text = _REF_RE.sub("", text)
    text = _DROP_TAG_RE.sub("", text)
    text = _render_templates(text)
    text = _remove_nested(_TABLE_RE, text)
    text = _replace_links(text)
    text = _EXT_LINK_RE.sub(r"\1", text)
    text = _QUOTES_RE.sub("", text)
    text = _HEADING_RE.sub(r"\2", text)
    text = _LIST_MARKER_RE.sub("", text)
    text = _TAG_RE.sub(" ", text)
    text = _MAGIC_RE.sub("", text)
    text = html.unescape(text)
    text = _TAG_RE.sub(" ", text)  # entities such as &lt;br&gt; only become tags after unescaping
    text = _LEFTOVER_RE.sub("", text)  # unbalanced braces/brackets in broken markup
    text = _EMPTY_PARENS_RE.sub("", text)
    text = _LEADING_PUNCT_PARENS_RE.sub("(", text)
    text = _TRAILING_PUNCT_PARENS_RE.sub(")", text)
    text = _DOUBLE_PUNCT_RE.sub(r"\1", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = _SPACE_AFTER_PAREN_RE.sub(r"\1", text)
    return _normalise_lines(text)


# --------------------------------------------------------------------------- lead / body / summary

_FIRST_HEADING_RE = re.compile(r"^==[^=\n].*?==\s*$", re.M)
_TAIL_SECTIONS = (
    "see also|references|notes|footnotes|citations|sources|bibliography|further reading|"
    "external links|notes and references|references and notes|works cited|related articles"
)
_TAIL_HEADING_RE = re.compile(rf"^==\s*({_TAIL_SECTIONS})\s*==\s*$", re.M | re.I)


def split_lead(wikitext: str) -> tuple[str, str]:
    """(lead, body) at the first level-2 heading; the tail reference sections are cut from the body."""
    m = _FIRST_HEADING_RE.search(wikitext)
    if m is None:
        return wikitext, ""
    lead, body = wikitext[: m.start()], wikitext[m.start() :]
    tail = _TAIL_HEADING_RE.search(body)
    return lead, body[: tail.start()] if tail else body


_ABBREVIATIONS = frozenset(
    "c ca mr mrs ms dr st jr sr vs etc e.g i.e no vol approx gen col lt sgt rev prof fr inc ltd co "
    "mt ft jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_INITIALS_RE = re.compile(r"[a-z](?:\.[a-z])*")  # "J", "U.S", "A.D": no sentence end
_BOUNDARY_RE = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Conservative sentence split: never after a known abbreviation or initials ("A.", "U.S.")."""
    sentences, start = [], 0
    for m in _BOUNDARY_RE.finditer(text):
        before = text[start : m.start()].rsplit(None, 1)
        last = before[-1].lower().strip("\"'([.") if before else ""
        if text[m.start()] == "." and (last in _ABBREVIATIONS or _INITIALS_RE.fullmatch(last)):
            continue
        sentences.append(text[start : m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    return sentences + [tail] if tail else sentences


def lead_summary(lead_text: str) -> str:
    """First lead sentence, plus the second if both fit in SUMMARY_TWO_SENTENCE_MAX words."""
    sentences = split_sentences(" ".join(lead_text.split()))
    if not sentences:
        return ""
    summary = sentences[0]
    if len(sentences) > 1:
        two = f"{summary} {sentences[1]}"
        if len(two.split()) <= SUMMARY_TWO_SENTENCE_MAX:
            summary = two
    return summary


def make_pair(page: Page) -> dict[str, str] | None:
    """(title, document, summary) for one article, or None if it fails the length filters."""
    lead, body = split_lead(page.text)
    summary = lead_summary(strip_markup(lead))
    document = strip_markup(body)
    n_doc, n_sum = len(document.split()), len(summary.split())
    if n_doc < MIN_DOCUMENT_WORDS or not MIN_SUMMARY_WORDS <= n_sum <= MAX_SUMMARY_WORDS:
        return None
    return {"title": page.title, "document": document, "summary": summary}


@lru_cache(maxsize=4)
def _pairs_cached(path: str, mtime_ns: int) -> tuple[tuple[str, str, str], ...]:
    """Parsed pairs in dump order; cached per file version so repeated loads cost nothing."""
    pairs, seen = [], set()
    for page in iter_pages(Path(path)):
        if page.title in seen or not is_article(page):
            continue
        pair = make_pair(page)
        if pair is not None:
            seen.add(page.title)
            pairs.append((pair["title"], pair["document"], pair["summary"]))
    return tuple(pairs)


def load_wiki_pairs() -> list[dict[str, str]]:
    """All filtered pairs in dump order, before splitting."""
    path = gensim_test_file(WIKI_FILE)
    rows = _pairs_cached(str(path), path.stat().st_mtime_ns)
    if not rows:
        raise DataError(f"no article in {path} passed the filters; the file looks empty or damaged")
    return [dict(zip(("title", "document", "summary"), row, strict=True)) for row in rows]


# --------------------------------------------------------------------------- split


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, validation, test) sizes for n pairs under SPLIT_FRACTIONS; test takes the remainder."""
    n_train = round(n * SPLIT_FRACTIONS[0])
    n_val = round(n * SPLIT_FRACTIONS[1])
    return n_train, n_val, n - n_train - n_val


def load_wiki_lead(seed: int = 42) -> DatasetDict:
    """Seeded train/validation/test DatasetDict of (title, document, summary); fixed for a given seed."""
    pairs = load_wiki_pairs()
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_train, n_val, _ = split_sizes(len(pairs))
    bounds = {
        "train": (0, n_train),
        "validation": (n_train, n_train + n_val),
        "test": (n_train + n_val, None),
    }
    splits = {}
    for name in SPLITS:
        lo, hi = bounds[name]
        rows = [pairs[i] for i in order[lo:hi]]
        columns = {col: [r[col] for r in rows] for col in FEATURES}
        splits[name] = Dataset.from_dict(columns, features=FEATURES)
    return DatasetDict(splits)
