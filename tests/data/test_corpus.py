"""The corpora themselves, checked in CI: schema, size, spread, sources, whole documents per split, no near-duplicates."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pysbd
import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir

from claimstance.commands.datasheet import END, START, read_sources, render, sources_markdown
from claimstance.data.annotations import load_annotations
from claimstance.data.corpus import near_duplicates, normalise_text
from claimstance.data.dataset import build_dataset

KNOWN = ["commitment", "caution", "request", "none"]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
DOCUMENTS = ROOT / "data" / "documents"


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
    text = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    data = ROOT / "data"
    expected = render(DOCUMENTS, data / "annotations", data / "contrast", data / "challenge", KNOWN)
    assert block == expected, "data/README.md is stale: run python scripts/datasheet.py"


# --- the document corpus: real public documents rewritten sentence by sentence --------------------------


@pytest.fixture(scope="module")
def documents():
    return load_annotations(DOCUMENTS, KNOWN).rows


@pytest.fixture(scope="module")
def sources():
    return read_sources(DOCUMENTS / "sources")


@pytest.fixture(scope="module")
def default_split():
    """The dataset the default ``make train`` builds, from the repository's own data."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        cfg = compose(config_name="train", overrides=[f"paths.data_dir={ROOT / 'data'}"])
    dataset, _ = build_dataset(cfg.data)
    return dataset


def test_document_corpus_size_and_field_spread(documents):
    fields = Counter(row.domain for row in documents)
    assert len(documents) >= 3000
    assert len({row.doc for row in documents}) >= 120
    assert len(fields) >= 15, sorted(fields)
    largest, size = fields.most_common(1)[0]
    assert size / len(documents) <= 0.12, f"{largest} holds {size / len(documents):.1%} of the sentences"


def test_every_document_is_whole_and_in_order(documents):
    positions = defaultdict(list)
    for row in documents:
        assert row.doc and row.position, f"{row.where}: document rows need doc and position"
        assert row.doc.startswith(f"{row.domain}-"), f"{row.where}: doc {row.doc} is not in field {row.domain}"
        assert row.id == f"{row.doc}-{row.position:03d}", row.where
        positions[row.doc].append(row.position)
    gaps = {doc: p for doc, p in positions.items() if p != list(range(1, len(p) + 1))}
    assert not gaps, f"documents with missing or shuffled positions: {sorted(gaps)[:5]}"


def test_hard_case_notes_cite_a_rule(documents):
    bad = [row.where for row in documents if row.note and not re.match(r"(R\d+|3b|3c-[a-m]|3d-[a-h])\b", row.note)]
    assert not bad, f"notes must start with the rule (R1..R12, 3b, 3c-a..m or 3d-a..h): {bad[:5]}"


def test_sources_table_is_complete(documents, sources):
    rows_per_doc = Counter(row.doc for row in documents)
    field_of = {row.doc: row.domain for row in documents}
    by_doc = Counter(source["doc"] for source in sources)
    assert not [doc for doc, n in by_doc.items() if n > 1], "a document has two source records"
    assert set(by_doc) == set(rows_per_doc), set(by_doc) ^ set(rows_per_doc)
    for source in sources:
        assert source["url"].startswith("http"), source["where"]
        assert source["field"] == field_of[source["doc"]], source["where"]
        assert int(source["sentences"]) == rows_per_doc[source["doc"]], source["where"]
    urls = Counter(source["url"] for source in sources)
    assert not [u for u, n in urls.items() if n > 1], "the same page is two documents"


def test_sources_md_is_current(sources):
    expected = sources_markdown(sources)
    assert (DOCUMENTS / "SOURCES.md").read_text(encoding="utf-8") == expected, "run python scripts/datasheet.py"


@pytest.mark.slow  # splits the whole corpus
def test_default_split_keeps_documents_whole_and_holds_out_enough(default_split):
    groups = {
        split: {g for g, c in zip(part["group"], part["corpus"], strict=True) if c == "documents"}
        for split, part in default_split.items()
    }
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["validation"]
    assert not groups["validation"] & groups["test"]
    assert len(groups["test"]) >= 30 and len(default_split["test"]) >= 700


@pytest.mark.slow  # splits the whole corpus and compares every pair
def test_no_near_duplicates_across_splits(default_split):
    trained = [(f"{s}:{r['id']}", r["text"]) for s in ("train", "validation") for r in default_split[s]]
    for split in default_split:
        if split in ("train", "validation"):
            continue
        rows = [(f"{split}:{r['id']}", r["text"]) for r in default_split[split]]
        pairs = near_duplicates(rows, threshold=0.7, across=trained)
        assert not pairs, f"{split} sentences too close to training:\n" + pairs_text(pairs)


# --- contrast pairs: one small edit flips the label -----------------------------------------------------


@pytest.fixture(scope="module")
def contrast():
    return load_annotations(ROOT / "data" / "contrast", KNOWN).rows


def test_contrast_pairs_are_pairs_with_different_labels(contrast):
    members = defaultdict(list)
    for row in contrast:
        assert row.pair and row.edit, f"{row.where}: contrast rows need pair and edit"
        members[row.pair].append(row)
    assert len(members) >= 400
    odd = [pair for pair, rows in members.items() if len(rows) != 2 or rows[0].label == rows[1].label]
    assert not odd, f"pairs without exactly two rows of different labels: {odd[:5]}"
    directions = Counter((a.label, b.label) for a, b in members.values())
    flips = {(a, b) for a in KNOWN for b in KNOWN if a != b}
    covered = {d for d in flips if directions[d] + directions[d[::-1]] > 0}
    assert covered == flips, f"label changes never made: {sorted(flips - covered)}"
    assert len({row.domain for row in contrast}) >= 15


def test_contrast_pairs_do_not_repeat_the_corpora(contrast, training, documents, challenge):
    others = [(r.where, r.text) for r in training + documents + challenge]
    pairs = near_duplicates([(r.where, r.text) for r in contrast], threshold=0.7, across=others)
    assert not pairs, "contrast sentences too close to corpus sentences:\n" + pairs_text(pairs)
