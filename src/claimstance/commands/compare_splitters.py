"""Which sentence splitter ``claimstance.inference.articles`` should use, measured on the project's own documents.

Gold articles are rebuilt from ``data/documents``: the rows of a document, in ``position`` order, are its
sentences, and the writers kept headlines, subheads and captions as rows of their own. Each document becomes
paragraphs of one to three consecutive sentences (seeded), any row without terminal punctuation standing
alone as it would in a real article, laid out three ways: unwrapped (one paragraph per line, no blank
lines, like text copied from a web page) and hard-wrapped with ``textwrap.fill`` at each configured width
(blank lines between paragraphs, like a wire story). The gold sentence boundaries are the offsets where
each row ends. Every splitter runs through :func:`claimstance.inference.articles.segment`, the code that predicts;
the ``before`` rows are the old article mode, each line split on its own with pysbd.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from claimstance.config import command_line, default_threads
from claimstance.data.corpus import documents_in_order
from claimstance.data.textio import InputError
from claimstance.errors import ConfigError, exits_cleanly
from claimstance.inference.articles import DEFAULT_SPLITTER, SPLITTERS, TERMINAL, segment, split_pysbd
from claimstance.tables import markdown_table

log = logging.getLogger(__name__)

BEFORE = "before"  # the old article mode, in the table as a splitter name

Spans = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Article:
    """One document laid out as text, with the gold sentence spans."""

    doc: str
    layout: str
    text: str
    sentences: tuple[tuple[int, int], ...]


def load_documents(folder: str | Path) -> dict[str, list[str]]:
    """Sentences of each document of ``folder/*.jsonl``, in ``position`` order, documents by name."""
    paths = sorted(Path(folder).glob("*.jsonl"))
    if not paths:
        raise InputError(f"{folder}: no *.jsonl document files")
    return dict(sorted(documents_in_order(paths)))


def paragraphs_of(sentences: Sequence[str], rng: random.Random) -> list[list[str]]:
    """Runs of one to three sentences; a sentence without terminal punctuation (a heading) stands alone."""
    paragraphs: list[list[str]] = []
    size = 0
    for sentence in sentences:
        alone = not TERMINAL.search(sentence)
        if alone or not paragraphs or len(paragraphs[-1]) >= size:
            paragraphs.append([sentence])
            size = 1 if alone else rng.randint(1, 3)
        else:
            paragraphs[-1].append(sentence)
    return paragraphs


def _gold_spans(text: str, sentences: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Where each sentence lies in ``text``: layout changes only whitespace, so count the other characters."""
    visible = [i for i, char in enumerate(text) if not char.isspace()]
    spans, seen = [], 0
    for sentence in sentences:
        size = sum(not char.isspace() for char in sentence)
        spans.append((visible[seen], visible[seen + size - 1] + 1))
        seen += size
    return tuple(spans)


def build_articles(documents: dict[str, list[str]], widths: Sequence[int], seed: int) -> dict[str, list[Article]]:
    """Articles by layout: ``unwrapped`` and ``wrapped-<width>``; the same paragraphs in every layout."""
    layouts: dict[str, list[Article]] = defaultdict(list)
    for doc, sentences in documents.items():
        paragraphs = [" ".join(p) for p in paragraphs_of(sentences, random.Random(f"{seed}:{doc}"))]
        texts = {"unwrapped": "\n".join(paragraphs) + "\n"}
        texts |= {f"wrapped-{width}": "\n\n".join(textwrap.fill(p, width) for p in paragraphs) + "\n" for width in widths}
        for layout, text in texts.items():
            layouts[layout].append(Article(doc, layout, text, _gold_spans(text, sentences)))
    return dict(layouts)


def line_by_line(text: str) -> list[tuple[int, int]]:
    """The old article mode: every line split on its own by pysbd, spans trimmed of whitespace."""
    spans = []
    for line in re.finditer(r"[^\n]+", text):
        for start, end in split_pysbd(line.group()):
            piece = line.group()[start:end]
            left = start + len(piece) - len(piece.lstrip())
            right = end - (len(piece) - len(piece.rstrip()))
            if left < right:
                spans.append((line.start() + left, line.start() + right))
    return spans


def score(pairs: Iterable[tuple[Spans, Spans]]) -> dict:
    """Sentence-boundary precision, recall and F1 over (predicted, gold) span lists, one pair per document.

    A predicted sentence end is correct when a gold sentence ends at the same offset; ``exact`` counts
    predicted sentences whose start and end both match a gold sentence.
    """
    predicted = gold = correct = exact = 0
    for predicted_spans, gold_spans in pairs:
        predicted_ends, gold_ends = {end for _, end in predicted_spans}, {end for _, end in gold_spans}
        predicted += len(predicted_ends)
        gold += len(gold_ends)
        correct += len(predicted_ends & gold_ends)
        exact += len(set(predicted_spans) & set(gold_spans))
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "gold": gold,
        "predicted": predicted,
        "correct": correct,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "exact": exact,
        "exact_share": exact / gold if gold else 0.0,
    }


def _splitter_function(name: str) -> Callable[[str], list[tuple[int, int]]]:
    if name == BEFORE:
        return line_by_line
    return lambda text: [(s.start, s.end) for s in segment(text, splitter=name)]


def measure(name: str, articles: Sequence[Article], repeats: int) -> dict:
    """Scores and speed of one splitter on one layout; the fastest of ``repeats`` timed passes counts."""
    split = _splitter_function(name)
    split(articles[0].text)  # loads the library and builds its splitter outside the timing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predictions = [split(article.text) for article in articles]
        best = min(best, time.perf_counter() - started)
    scores = score(zip(predictions, (article.sentences for article in articles), strict=True))
    rates = {key: round(scores[key], 4) for key in ("precision", "recall", "f1", "exact_share")}
    speed = {"seconds": round(best, 3), "sentences_per_s": round(scores["gold"] / best)}
    return {"splitter": name, "layout": articles[0].layout, **scores, **rates, **speed}


def choose(rows: Sequence[dict]) -> tuple[str, dict[str, float]]:
    """The best splitter: highest mean F1 over the layouts (to 3 decimals), then the fastest."""
    f1: dict[str, list[float]] = defaultdict(list)
    speed: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["splitter"] != BEFORE:
            f1[row["splitter"]].append(row["f1"])
            speed[row["splitter"]].append(row["sentences_per_s"])
    mean_f1 = {name: sum(values) / len(values) for name, values in f1.items()}
    best = max(mean_f1, key=lambda name: (round(mean_f1[name], 3), min(speed[name])))
    return best, mean_f1


def markdown(rows: Sequence[dict], command: str, machine: str) -> str:
    """The docs page: how it was measured, the table, and the choice with its reason."""
    best, mean_f1 = choose(rows)
    ranked = sorted(mean_f1, key=mean_f1.get, reverse=True)
    best_speed = min(row["sentences_per_s"] for row in rows if row["splitter"] == best)
    lines = [
        "# Sentence splitters for article input",
        "",
        "`claimstance.inference.articles.segment` turns a document into sentences: blank lines and line-wrap geometry decide",
        "the paragraphs, then a sentence splitter cuts each paragraph. This table scores the splitters on articles",
        "rebuilt from the document corpus (`data/documents`): every document as paragraphs of one to three",
        "sentences (seeded), headline-like rows on their own line, laid out unwrapped (one paragraph per line, no",
        "blank lines) and hard-wrapped with `textwrap.fill` (blank lines between paragraphs). A predicted sentence",
        "end is correct when a gold sentence ends at the same character; *exact sentences* have both ends right.",
        "Speed is gold sentences per second through `segment`, the fastest of the timed passes, in one process",
        f"({machine}).",
        "`before` is the old article mode: each line split on its own with pysbd.",
        "",
        "Measured with:",
        "",
        f"    {command}",
        "",
    ]
    header = ["splitter", "layout", "precision", "recall", "F1", "exact sentences", "sentences/s"]
    table = [
        [row["splitter"], row["layout"], row["precision"], row["recall"], row["f1"]]
        + [f"{row['exact']} / {row['gold']} ({row['exact_share']:.1%})", f"{row['sentences_per_s']:,.0f}"]
        for row in rows
    ]
    lines.append(markdown_table(header, table, align=["left", "left", *["right"] * 5]))
    chosen = "this measurement's choice" if best == DEFAULT_SPLITTER else f"not this measurement's choice, `{best}`"
    lines += [
        "",
        "Mean F1 over the layouts: " + ", ".join(f"{name} {mean_f1[name]:.3f}" for name in ranked) + ".",
        "",
        f"**{best}** has the best mean F1 (speed breaks ties at 3 decimals), so it is the default:",
        f"`claimstance.inference.articles.DEFAULT_SPLITTER` is `{DEFAULT_SPLITTER}`, {chosen}. "
        f"At {best_speed:,.0f} sentences/s or more it",
        "splits text several times faster than the classifier labels it (README.md, inference), so a faster splitter",
        "would save little, while a slower one (pysbd) would add a visible share to the time of article prediction.",
        "Of the errors left, about a third are the corpus's own cuts at a colon before a quotation or a list, which",
        "no splitter makes; most others are abbreviations (Rs., hon., Maj.), datelines and photo credits.",
    ]
    return "\n".join(lines) + "\n"


@exits_cleanly
def run(cfg: DictConfig) -> list[dict]:
    """``scripts/compare_splitters.py``: score every splitter on every layout; write ``<output>.md`` and ``.json``."""
    unknown = [name for name in cfg.splitters if name not in SPLITTERS]
    if unknown:
        raise ConfigError(f"splitters has {unknown}; known splitters are {', '.join(SPLITTERS)}")
    if not isinstance(cfg.repeats, int) or cfg.repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1, got {cfg.repeats!r}")
    layouts = build_articles(load_documents(cfg.documents), list(cfg.widths), cfg.seed)
    rows = []
    for name in [BEFORE, *cfg.splitters]:
        for articles in layouts.values():
            row = measure(name, articles, cfg.repeats)
            rows.append(row)
            log.info(
                "%-10s %-11s F1 %.3f  exact %5.1f%%  %8.0f sentences/s",
                name,
                row["layout"],
                row["f1"],
                100 * row["exact_share"],
                row["sentences_per_s"],
            )
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    command, cores, load = command_line("compare_splitters.py"), default_threads(), os.getloadavg()[0]
    machine = f"{cores} CPU core(s), load average {load:.1f} at the end: other work slows the speeds, not the scores"
    output.with_suffix(".md").write_text(markdown(rows, command, machine), encoding="utf-8")
    summary = {"command": command, "cores": cores, "load_average": round(load, 2), "seed": cfg.seed, "best": choose(rows)[0]}
    summary["rows"] = rows
    output.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("Wrote %s and %s", output.with_suffix(".md"), output.with_suffix(".json"))
    return rows
