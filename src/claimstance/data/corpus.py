"""Corpus-level helpers: documents in reading order, text normalisation and near-duplicate detection.

Pure standard-library code, so annotators can run it before any model dependency is installed:
``python -m claimstance.data.corpus data/annotations/*.jsonl data/challenge/*.jsonl``.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from claimstance.data.textio import InputError, iter_jsonl

_WORD = re.compile(r"\w+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Case- and whitespace-insensitive key used to compare sentences."""
    return " ".join(text.casefold().split())


def shingles(text: str, size: int = 2) -> frozenset[tuple[str, ...]]:
    """Word n-grams of a sentence; a one-word sentence is its own shingle."""
    words = _WORD.findall(text.casefold())
    if len(words) < size:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass(frozen=True)
class NearDuplicate:
    """Two sentences whose word-shingle sets overlap by at least the threshold."""

    first: str
    second: str
    jaccard: float


def near_duplicates(
    texts: Sequence[tuple[str, str]],
    threshold: float = 0.7,
    size: int = 2,
    across: Sequence[tuple[str, str]] | None = None,
) -> list[NearDuplicate]:
    """Pairs of (key, text) with shingle Jaccard >= threshold.

    Without ``across``, pairs within ``texts``; with it, only pairs with one side in each.
    An inverted index keeps this near-linear on thousands of sentences.
    """
    left = [(key, shingles(text, size)) for key, text in texts]
    right = left if across is None else [(key, shingles(text, size)) for key, text in across]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j, (_, grams) in enumerate(right):
        for gram in grams:
            index[gram].append(j)
    found = []
    for i, (key, grams) in enumerate(left):
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for j in index[gram]:
                if across is not None or j > i:
                    shared[j] += 1
        for j, inter in shared.items():
            other_key, other_grams = right[j]
            score = inter / (len(grams) + len(other_grams) - inter)
            if score >= threshold:
                found.append(NearDuplicate(key, other_key, round(score, 3)))
    return found


def documents_in_order(paths: Iterable[Path]) -> list[tuple[str, list[str]]]:
    """Every document in ``paths`` (JSONL files) as ``(name, sentences in reading order)``, by first appearance.

    Rows are grouped by their ``doc`` field and ordered by ``position``; a row without them belongs to one
    document per file, named after the file, in line order, so a corpus of independent sentences still gives
    documents. Sentences are stripped of surrounding whitespace.
    """
    documents: dict[str, list[tuple[float, int, str]]] = {}
    for path in paths:
        for number, row in iter_jsonl(path):
            text, position = row.get("text"), row.get("position", number)
            if not isinstance(text, str):
                raise InputError(f"{path}:{number}: field 'text' must be a string, got {text!r}")
            if isinstance(position, bool) or not isinstance(position, (int, float)):
                raise InputError(f"{path}:{number}: field 'position' must be a number, got {position!r}")
            documents.setdefault(str(row.get("doc") or path.stem), []).append((position, number, text.strip()))
    return [(name, [text for _, _, text in sorted(rows, key=lambda row: row[:2])]) for name, rows in documents.items()]


def read_texts(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """(``file:line id``, text) for every JSON line of the given files; no validation."""
    return [(f"{path}:{number} {record.get('id')}", record["text"]) for path in paths for number, record in iter_jsonl(path)]


if __name__ == "__main__":
    pairs = near_duplicates(read_texts(Path(p) for p in sys.argv[1:]))
    for pair in pairs:
        print(f"{pair.jaccard:.2f}  {pair.first}  <->  {pair.second}")
    print(f"{len(pairs)} near-duplicate pair(s)")
    sys.exit(1 if pairs else 0)
