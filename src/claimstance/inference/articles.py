"""Documents into sentences with exact character offsets: paragraphs, wrapped lines and headings.

Article mode used to split each line on its own, so a story hard-wrapped at 72 columns came out as one
fragment per line ("...Thomas Bach said Wednesday he"). Here lines are first grouped into paragraphs, each
paragraph is split into sentences once, and every sentence keeps its place in the original text:
``original[segment.start:segment.end] == segment.text``, newlines of wrapped lines included.

How lines become paragraphs (``layout="paragraphs"``):

* A blank (or whitespace-only) line always ends a paragraph.
* Between two non-blank lines the break is *soft* (the lines are joined) when the text is hard-wrapped and
  the line is *full*: its length plus a space plus the next line's first word exceeds the wrap width, so a
  wrapping editor would have broken it there. It is also soft when the next line starts with a lowercase
  letter and the line does not end in terminal punctuation (after ``;`` or ``:`` a lowercase line is a list
  item). Otherwise the break is *hard* and a new paragraph starts. A list item (``*``, ``•``, ``-`` not
  followed by a lowercase word, which is a dash going on with the sentence) always starts a new paragraph.
* The text counts as hard-wrapped when at least two, and at least half, of the lines followed by another
  non-blank line are full, the wrap width being the longest such line of at most ``MAX_WRAP_WIDTH``
  characters (longer lines are never full). So a file with one paragraph per line is not taken for wrapped
  text, and the short last line of a wrapped paragraph is not full: the next paragraph is not glued to it.
  Lengths are counted both in characters, as editors and ``textwrap`` wrap, and in UTF-8 bytes, as GNU
  ``fold`` does, and the count that finds more full lines is taken: by characters alone, a ``fold -w 60``
  line with curly quotes falls a few characters short, and a wrapped list item was cut there.
* A paragraph of at most ``HEADING_WORDS`` words that does not end in terminal punctuation
  (``. ! ? : ; …``, optionally followed by closing quotes or brackets) and is not a list item is a heading
  (headline, subhead, caption, dateline): one segment with ``heading=True``, never split. Only whole
  paragraphs qualify, so the short last line of a wrapped paragraph (joined to the full line before it) is
  never a heading, while a headline directly above the body is one: its line is not full. Left open: a
  headline so long that the body's first word would not have fitted after it is joined to the body (a
  Title Case test for it split wrapped body lines full of names, so it was dropped). A sentence the splitter
  cuts from a longer paragraph is a heading too when it fills its line(s) alone and passes the same test:
  a subhead after a line that happened to be full.

``layout="lines"`` keeps one segment per non-blank line, no splitting, for files written one sentence a line.

Offsets stay exact because the splitter sees the paragraph with every whitespace character (newlines
included) replaced by one space, a string of the same length, and each span it returns is trimmed of
whitespace. Splitters are chosen by name from :data:`SPLITTERS`. The default, ``syntok``, had the best
sentence-boundary F1 on articles rebuilt from the project's own documents, unwrapped and hard-wrapped at 60
and 72 columns (0.991-0.992, Bling Fire 0.990, pysbd 0.975, sentencex 0.966; ``docs/splitters.md``,
``scripts/compare_splitters.py``). At 4,000-6,000 sentences/s on one core it adds 10-16% to the time of
labelling with the int8 model (about 650 sentences/s, README.md), where pysbd (about 1,200/s) would add
about half. The splitter libraries are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from claimstance.errors import ConfigError

LAYOUTS = ("paragraphs", "lines")
MAX_WRAP_WIDTH = 120  # nobody hard-wraps wider; longer lines are paragraphs of their own
HEADING_WORDS = 12  # headlines and subheads run shorter; longer unpunctuated lines are treated as text

_NEWLINE = re.compile(r"\r\n|\r|\n")
_BLANKS = re.compile(r"[\s\ufeff]")  # a leading byte-order mark (textio.read_text keeps it) counts as blank
TERMINAL = re.compile(r"[.!?:;…][\"'”’»)\]]*$")  # a sentence end, closing quotes or brackets allowed after it
_LIST_ITEM = re.compile(r"[*•·]\s|-\s+(?![a-z])")  # "- word" in lowercase is a dash going on with the sentence
_WRAPPED_HYPHEN = re.compile(r"(?<=\w-)\s*\n\s*(?=\w)")
_SPACES = re.compile(r"\s+")


def model_text(text: str) -> str:
    """The text to classify: whitespace runs become one space; a word hyphen at a line end joins the next line.

    Wrapping editors break after a hyphen that is already there ("Secretary-\\nGeneral"), so the hyphen stays
    and only the line break goes.
    """
    return _SPACES.sub(" ", _WRAPPED_HYPHEN.sub("", text)).strip(" \ufeff")


@dataclass(frozen=True)
class Segment:
    """One sentence (or heading) of a document: ``text == document[start:end]``, indices 0-based."""

    paragraph: int
    sentence: int
    start: int
    end: int
    text: str
    heading: bool

    @property
    def model_text(self) -> str:
        """What gets classified: see :func:`model_text`."""
        return model_text(self.text)


Spans = list[tuple[int, int]]


def _located(text: str, sentences: list[str]) -> Spans:
    """Spans of the splitter's sentence strings, found in order in ``text`` (one a splitter altered is skipped)."""
    spans, cursor = [], 0
    for sentence in sentences:
        sentence = sentence.strip()
        start = text.find(sentence, cursor) if sentence else -1
        if start >= 0:
            cursor = start + len(sentence)
            spans.append((start, cursor))
    return spans


@functools.cache
def _pysbd():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_pysbd(text: str) -> Spans:
    """pysbd: rule-based (the Golden Rules), English."""
    return _located(text, _pysbd().segment(text))


@functools.cache
def _syntok_tokenizer():
    from syntok.tokenizer import Tokenizer

    return Tokenizer(replace_not_contraction=False)


def split_syntok(text: str) -> Spans:
    """syntok: a tokenizer keeping offsets, then sentence rules over the tokens."""
    from syntok.segmenter import segment as sentences_of

    tokens = _syntok_tokenizer().tokenize(text)
    return [(s[0].offset, s[-1].offset + len(s[-1].value)) for s in sentences_of(tokens) if s]


def split_blingfire(text: str) -> Spans:
    """Bling Fire: a compiled finite-state splitter (its model is loaded once by the library)."""
    from blingfire import text_to_sentences_and_offsets

    return list(text_to_sentences_and_offsets(text)[1]) if text.strip() else []


def split_sentencex(text: str) -> Spans:
    """sentencex: Wikimedia's rule-based splitter (compiled), English rules."""
    from sentencex import segment as sentencex_segment

    return _located(text, list(sentencex_segment("en", text)))


SPLITTERS: dict[str, Callable[[str], Spans]] = {
    "syntok": split_syntok,
    "pysbd": split_pysbd,
    "blingfire": split_blingfire,
    "sentencex": split_sentencex,
}
DEFAULT_SPLITTER = "syntok"


def _heading_like(text: str) -> bool:
    """Short, no terminal punctuation, not a list item: a headline, subhead, caption or dateline."""
    return 0 < len(text.split()) <= HEADING_WORDS and not TERMINAL.search(text) and not _LIST_ITEM.match(text)


def _line_spans(text: str) -> Spans:
    """(start, end) of every line, line endings excluded."""
    spans, start = [], 0
    for match in _NEWLINE.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _trim(flat: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed past blanks at both edges (``start == end`` when only blanks)."""
    while start < end and flat[start] == " ":
        start += 1
    while end > start and flat[end - 1] == " ":
        end -= 1
    return start, end


def _full_lines(lengths: list[int], next_words: dict[int, int], followed: list[int]) -> dict[int, bool]:
    """Which followed lines are full, lengths in one unit: the next line's first word would have overrun the wrap width."""
    width = max((lengths[i] for i in followed if lengths[i] <= MAX_WRAP_WIDTH), default=0)
    return {i: lengths[i] <= MAX_WRAP_WIDTH and lengths[i] + 1 + next_words[i] > width for i in followed}


def _paragraphs(text: str, flat: str, lines: Spans, spans: Spans) -> Spans:
    """Paragraphs of the blank-flattened text from its lines, whole and trimmed (rules: the module docstring)."""
    visible = [flat[start:end] for start, end in spans]
    followed = [i for i in range(len(lines) - 1) if visible[i] and visible[i + 1]]

    def measured(size: Callable[[str], int]) -> dict[int, bool]:
        # indentation counts
        lengths = [size(text[line_start:end]) for (line_start, _), (_, end) in zip(lines, spans, strict=True)]
        first = {i: spans[i + 1][0] for i in followed}
        words = {i: size(text[first[i] : first[i] + len(visible[i + 1].split(" ", 1)[0])]) for i in followed}
        return _full_lines(lengths, words, followed)

    # Editors wrap by characters, GNU fold by UTF-8 bytes: the unit finding more full lines is the wrap's (a tie: characters).
    by_bytes = measured(lambda part: len(part.encode("utf-8", "surrogatepass")))
    full = max(measured(len), by_bytes, key=lambda lines_full: sum(lines_full.values()))
    full_count = sum(full.values())
    wrapped = full_count >= 2 and 2 * full_count >= len(followed)

    paragraphs: Spans = []
    begins = True  # the next non-blank line starts a paragraph
    for i, (start, end) in enumerate(spans):
        if not visible[i]:
            begins = True
            continue
        if begins:
            paragraphs.append((start, end))
        else:
            paragraphs[-1] = (paragraphs[-1][0], end)
        begins = i not in full or not _continues(visible[i], visible[i + 1], wrapped and full[i])
    return paragraphs


def _continues(line: str, following: str, full: bool) -> bool:
    """Whether ``following`` continues the paragraph that ``line`` ends (``full``: a wrap broke ``line``)."""
    if _LIST_ITEM.match(following):
        return False
    return full or (following[0].islower() and not TERMINAL.search(line))


def _split(flat: str, start: int, end: int, splitter: Callable[[str], Spans]) -> Spans:
    """Sentence spans of ``flat[start:end]`` in document offsets: cut at each sentence end the splitter gives."""
    cuts = sorted({start + e for _, e in splitter(flat[start:end]) if 0 < e < end - start})
    spans = []
    for left, right in zip([start, *cuts], [*cuts, end], strict=True):
        left, right = _trim(flat, left, right)
        if left < right:
            spans.append((left, right))
    return spans


def segment(text: str, layout: str = "paragraphs", splitter: str = DEFAULT_SPLITTER) -> list[Segment]:
    """The sentences and headings of ``text`` in order, each with its exact offsets.

    ``layout``: ``paragraphs`` (running text, wrapped or not; see the module docstring) or ``lines`` (one
    sentence per non-blank line). ``splitter``: a name in :data:`SPLITTERS`.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if splitter not in SPLITTERS:
        raise ConfigError(f"splitter must be one of {', '.join(SPLITTERS)}, got {splitter!r}")
    flat, lines = _BLANKS.sub(" ", text), _line_spans(text)
    trimmed = [_trim(flat, start, end) for start, end in lines]
    if layout == "lines":
        spans = [(a, b) for a, b in trimmed if a < b]
        return [Segment(n, n, a, b, text[a:b], _heading_like(flat[a:b])) for n, (a, b) in enumerate(spans)]
    line_starts, line_ends = {a for a, _ in trimmed}, {b for _, b in trimmed}
    segments: list[Segment] = []
    for number, (start, end) in enumerate(_paragraphs(text, flat, lines, trimmed)):
        if _heading_like(flat[start:end]):
            spans, headings = [(start, end)], [True]
        else:
            spans = _split(flat, start, end, SPLITTERS[splitter])
            headings = [left in line_starts and right in line_ends and _heading_like(flat[left:right]) for left, right in spans]
        for (left, right), heading in zip(spans, headings, strict=True):
            segments.append(Segment(number, len(segments), left, right, text[left:right], heading))
    return segments
