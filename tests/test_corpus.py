"""The corpus itself, checked in CI: schema, size, balance, coverage, hard cases, no near-duplicates, seed kept apart."""

from __future__ import annotations

from collections import Counter, defaultdict

import pysbd
import pytest
from conftest import ROOT

from claimstance.annotations import load_annotations
from claimstance.corpus import near_duplicates, normalise_text

KNOWN = ["commitment", "caution", "request", "none"]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))


@pytest.fixture(scope="module")
def training():
    return load_annotations(ROOT / "data" / "annotations", KNOWN).rows


@pytest.fixture(scope="module")
def challenge():
    return load_annotations(ROOT / "data" / "challenge", KNOWN).rows


def test_training_corpus_size_and_label_minimums(training):
    counts = Counter(row.label for row in training)
    assert len(training) >= 2000
    assert all(counts[label] >= 450 for label in KNOWN), counts


def test_every_label_in_every_domain_and_enough_domains(training):
    labels_by_domain = defaultdict(set)
    for row in training:
        labels_by_domain[row.domain].add(row.label)
    assert len(labels_by_domain) >= 12
    missing = {domain: sorted(set(KNOWN) - found) for domain, found in labels_by_domain.items() if set(KNOWN) - found}
    assert not missing, f"labels missing per domain: {missing}"


def test_hard_case_shares(training, challenge):
    assert sum(bool(row.note) for row in training) / len(training) >= 0.35
    assert sum(bool(row.note) for row in challenge) / len(challenge) >= 0.40


def test_challenge_set_size_and_balance(challenge):
    counts = Counter(row.label for row in challenge)
    assert len(challenge) >= 240 and all(counts[label] >= 60 for label in KNOWN), counts


def pairs_text(pairs) -> str:
    return "\n".join(f"{p.jaccard:.2f} {p.first} <-> {p.second}" for p in pairs)


def test_no_near_duplicates_within_training(training):
    pairs = near_duplicates([(row.where, row.text) for row in training], threshold=0.7)
    assert not pairs, "near-duplicate training sentences:\n" + pairs_text(pairs)


def test_no_near_duplicates_between_training_and_challenge(training, challenge):
    pairs = near_duplicates([(r.where, r.text) for r in challenge], threshold=0.7, across=[(r.where, r.text) for r in training])
    assert not pairs, "challenge sentences too close to training:\n" + pairs_text(pairs)


def test_seed_sentences_only_in_seed_rows(training, challenge):
    splitter = pysbd.Segmenter(language="en", clean=False)
    for seed in SEEDS:
        source = f"seeds/{seed.name}"
        seed_rows = [row for row in training if row.source == source]
        assert seed_rows, f"{source} has no annotated rows"
        sentences = [s.strip() for line in seed.read_text(encoding="utf-8").splitlines() for s in splitter.segment(line)]
        sentences = [normalise_text(s) for s in sentences if len(s.split()) >= 4]
        others = [row for row in training + challenge if row.source != source]
        leaks = [(row.where, s) for row in others for s in sentences if s in normalise_text(row.text)]
        assert not leaks, f"seed sentences outside {source} rows: {leaks[:3]}"
        near = near_duplicates([(r.where, r.text) for r in others], threshold=0.7, across=[(s, s) for s in sentences])
        assert not near, pairs_text(near)


def test_every_seed_sentence_is_annotated(training):
    for seed in SEEDS:
        text = normalise_text(seed.read_text(encoding="utf-8"))
        rows = [row for row in training if row.source == f"seeds/{seed.name}"]
        assert all(normalise_text(row.text) in text for row in rows)
        covered = sum(len(normalise_text(row.text)) for row in rows)
        assert covered / len(text) > 0.9, "seed rows cover too little of the article"


def test_datasheet_tables_are_current():
    from claimstance.datasheet import END, START, render

    text = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    expected = render(ROOT / "data" / "annotations", ROOT / "data" / "challenge", KNOWN)
    assert block == expected, "data/README.md is stale: run python scripts/datasheet.py"
