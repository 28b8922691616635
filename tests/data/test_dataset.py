"""Dataset build: label selection, stratified seeded split without leakage, staleness, atomic save."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import ROOT, compose_train, corpus_sample, document_sample, write_jsonl

from claimstance.data.annotations import Annotation, AnnotationError
from claimstance.data.corpus import normalise_text
from claimstance.data.dataset import build_dataset, prepare_dataset


def data_cfg(tmp_path, annotations, **data):
    """The sentence-corpus recipe on ``annotations`` with ``data`` values set (one composition shared by the tests)."""
    values = {f"data.{key}": value for key, value in {"annotations": str(annotations), **data}.items()}
    return compose_train(["data=sentences"], tmp_path, values=values).data


THREE = ["commitment", "caution", "request"]


def test_split_is_stratified_seeded_and_leak_free(tmp_path, small_corpus):
    cfg = data_cfg(tmp_path, small_corpus, labels=THREE)
    dataset, summary = build_dataset(cfg)
    assert set(dataset) == {"train", "validation", "test"}
    assert dataset["train"].features["label"].names == ["commitment", "caution", "request"]
    texts = {split: {normalise_text(t) for t in dataset[split]["text"]} for split in dataset}
    assert (
        not texts["train"] & texts["test"]
        and not texts["train"] & texts["validation"]
        and not texts["validation"] & texts["test"]
    )
    # 40 per label: test 15% -> 6 each; validation 10% of the whole -> 4 each
    assert Counter(dataset["test"]["label"]) == {0: 6, 1: 6, 2: 6}
    assert Counter(dataset["validation"]["label"]) == {0: 4, 1: 4, 2: 4}
    assert summary["corpora"]["ann"]["left_out_by_label"] == {"none": 40}
    again, _ = build_dataset(cfg)
    assert list(again["test"]["id"]) == list(dataset["test"]["id"])
    other, _ = build_dataset(data_cfg(tmp_path, small_corpus, labels=THREE, split_seed=99))
    assert list(other["test"]["id"]) != list(dataset["test"]["id"])


def test_four_labels_by_default_keep_none(tmp_path, small_corpus):
    dataset, summary = build_dataset(data_cfg(tmp_path, small_corpus))
    assert dataset["train"].features["label"].names == ["commitment", "caution", "request", "none"]
    assert summary["corpora"]["ann"]["left_out_by_label"] == {}


def test_label_with_no_examples_is_an_error(tmp_path):
    rows = [r for r in corpus_sample(20) if r["label"] != "request"]
    path = write_jsonl(tmp_path / "ann.jsonl", rows)
    with pytest.raises(AnnotationError, match="label 'request' is in data.labels but has no examples"):
        build_dataset(data_cfg(tmp_path, path))


def test_too_few_examples_to_stratify(tmp_path):
    rows = [r for r in corpus_sample(20) if r["label"] != "request"] + [r for r in corpus_sample(3) if r["label"] == "request"]
    path = write_jsonl(tmp_path / "ann.jsonl", rows)
    with pytest.raises(AnnotationError, match="label 'request' has 3 example\\(s\\).*needs at least 10"):
        build_dataset(data_cfg(tmp_path, path))


def test_split_fractions_must_sum_to_one(tmp_path, small_corpus):
    with pytest.raises(ValueError, match="sum to 1"):
        build_dataset(data_cfg(tmp_path, small_corpus, **{"split.train": 0.8}))


def test_saved_dataset_is_reused_until_annotations_change(tmp_path, small_corpus, caplog):
    cfg = data_cfg(tmp_path, small_corpus)
    prepare_dataset(cfg)
    summary = json.loads((tmp_path / "data" / "processed" / "sentences" / "summary.json").read_text())
    assert summary["counts"]["train"]["total"] == 120  # 160 - 24 test - 16 validation
    caplog.set_level("INFO")
    prepare_dataset(cfg)
    assert "Reusing dataset" in caplog.text
    extra = small_corpus / "a.jsonl"
    extra.write_text(
        extra.read_text()
        + json.dumps(
            {
                "id": "new-1",
                "text": "The council will publish the audit on Friday.",
                "label": "commitment",
                "source": "authored",
                "domain": "x",
            }
        )
        + "\n"
    )
    caplog.clear()
    prepare_dataset(cfg)
    assert "Annotations changed" in caplog.text
    assert not [p for p in (tmp_path / "data" / "processed").iterdir() if p.name.startswith(".")]


def test_bad_annotations_leave_no_dataset_behind(tmp_path, small_corpus):
    (small_corpus / "a.jsonl").write_text("{broken\n")
    with pytest.raises(AnnotationError):
        prepare_dataset(data_cfg(tmp_path, small_corpus))
    assert not (tmp_path / "data" / "processed").exists() or not any((tmp_path / "data" / "processed").iterdir())


def test_challenge_sentence_also_in_training_is_rejected(tmp_path, small_corpus):
    leaked = json.loads((small_corpus / "a.jsonl").read_text().splitlines()[0])
    challenge = write_jsonl(tmp_path / "challenge" / "c.jsonl", [leaked | {"id": "c-1"}])
    with pytest.raises(AnnotationError, match="challenge sentence\\(s\\) also in the corpora"):
        build_dataset(data_cfg(tmp_path, small_corpus, challenge=str(challenge)))


def document_cfg(tmp_path, **data):
    """The default data recipe pointed at a sample of whole documents (and a small authored corpus as the extra)."""
    if not (tmp_path / "docs").exists():  # written once per test: the split depends on the labels
        write_jsonl(tmp_path / "docs" / "docs.jsonl", document_sample(4))
        write_jsonl(tmp_path / "authored" / "a.jsonl", corpus_sample(30))
    paths = {"annotations": f"{tmp_path}/docs", "extra.authored.path": f"{tmp_path}/authored"}
    values = {f"data.{key}": value for key, value in (paths | data).items()}
    return compose_train(["~data.extra.contrast", "data.challenge=null"], tmp_path, values=values).data


def test_grouped_split_keeps_documents_whole_seeded_and_adds_extra_corpora(tmp_path):
    cfg = document_cfg(tmp_path)
    dataset, summary = build_dataset(cfg)
    assert list(dataset) == ["train", "validation", "test", "authored_test"]
    docs = {s: {g for g, c in zip(p["group"], p["corpus"], strict=True) if c == "docs"} for s, p in dataset.items()}
    assert docs["test"] and docs["validation"] and docs["train"]
    assert not docs["train"] & docs["test"] and not docs["train"] & docs["validation"] and not docs["validation"] & docs["test"]
    total_docs = len(docs["train"] | docs["validation"] | docs["test"])
    assert 0.15 <= len(docs["test"]) / total_docs <= 0.35  # about data.split.test = 0.25 of the documents
    assert set(dataset["train"]["corpus"]) == {"docs", "authored"}  # train_on: [authored]
    assert summary["corpora"]["authored"]["groups"]["test"] == len(dataset["authored_test"])
    again, _ = build_dataset(cfg)
    assert list(again["test"]["id"]) == list(dataset["test"]["id"])
    only_docs, _ = build_dataset(document_cfg(tmp_path, train_on=[]))
    assert set(only_docs["train"]["corpus"]) == {"docs"} and "authored_test" in only_docs
    assert list(only_docs["test"]["id"]) == list(dataset["test"]["id"])  # the headline split does not move


def test_a_document_never_spans_two_splits(tmp_path):
    dataset, _ = build_dataset(document_cfg(tmp_path, split_seed=5))
    where = {}
    for split, part in dataset.items():
        for group, corpus in zip(part["group"], part["corpus"], strict=True):
            if corpus == "docs":
                assert where.setdefault(group, split) == split, f"{group} is in {where[group]} and {split}"


def test_hold_out_field_makes_that_field_the_test_split(tmp_path):
    rows = document_sample(4)
    field = rows[0]["domain"]
    dataset, _ = build_dataset(document_cfg(tmp_path, hold_out_field=field, train_on=[]))
    assert set(dataset["test"]["domain"]) == {field}
    assert len(dataset["test"]) == sum(row["domain"] == field for row in rows)
    assert field not in set(dataset["train"]["domain"]) | set(dataset["validation"]["domain"])
    with pytest.raises(AnnotationError, match="data.hold_out_field=nowhere: no sentence in that field"):
        build_dataset(document_cfg(tmp_path, hold_out_field="nowhere"))


def test_grouped_split_needs_the_group_field_on_every_row(tmp_path, small_corpus):
    with pytest.raises(AnnotationError, match="group_by=doc but 160 row\\(s\\) have no 'doc' field"):
        build_dataset(data_cfg(tmp_path, small_corpus, group_by="doc"))


def test_an_extra_corpus_sentence_trained_on_and_tested_is_a_leak(tmp_path):
    cfg = document_cfg(tmp_path)
    docs = [json.loads(line) for line in (tmp_path / "docs" / "docs.jsonl").read_text().splitlines()]
    authored = [json.loads(line) for line in (tmp_path / "authored" / "a.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "authored" / "a.jsonl", authored + [row | {"id": f"copy-{i}"} for i, row in enumerate(docs)])
    with pytest.raises(AnnotationError, match="sentence\\(s\\) also trained on"):
        build_dataset(cfg)


def test_unknown_train_on_corpus_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="data.train_on names \\['wiki'\\], which are not in data.extra"):
        build_dataset(document_cfg(tmp_path, train_on=["wiki"]))


def test_pinned_documents_keep_their_part_when_labels_change():
    from dataclasses import replace

    from claimstance.data.splits import split_pinned

    def row(d: int, i: int, label: str) -> Annotation:
        return Annotation(f"d{d}-{i}", f"sentence {d} {i}", label, "rewritten", "x", "f:1", doc=f"d{d}", position=i)

    rows = [row(d, i, ["caution", "none"][(d + i) % 2]) for d in range(30) for i in range(3)]
    pinned = {"d0": "test", "d1": "test", "d2": "validation", "d3": "train"}
    fractions = {"train": 0.6, "validation": 0.2, "test": 0.2}
    for labelled in (rows, [replace(r, label="none") if r.doc in ("d0", "d5") else r for r in rows]):
        parts = split_pinned(labelled, pinned, fractions, seed=3, group_by="doc")
        docs = {part: {r.doc for r in part_rows} for part, part_rows in parts.items()}
        for doc, part in pinned.items():
            assert [p for p, names in docs.items() if doc in names] == [part]
        assert sum(len(part_rows) for part_rows in parts.values()) == len(rows)


def test_a_bad_pinned_split_file_is_named(tmp_path):
    from claimstance.data.splits import read_pinned

    assert read_pinned(tmp_path / "absent.json") == {}
    bad = tmp_path / "splits.json"
    bad.write_text(json.dumps({"train": ["a"], "held": ["b"]}))
    with pytest.raises(AnnotationError, match="splits.json: a pinned split is a JSON object of lists named train"):
        read_pinned(bad)
    bad.write_text(json.dumps({"train": ["a"], "test": ["a"]}))
    with pytest.raises(AnnotationError, match="group 'a' is listed under both train and test"):
        read_pinned(bad)


@pytest.mark.slow
def test_the_project_held_out_documents_are_the_pinned_ones(tmp_path):
    cfg = compose_train([], tmp_path, values={"paths.data_dir": str(ROOT / "data"), "data.output_dir": str(tmp_path / "p")})
    dataset, _ = build_dataset(cfg.data)
    pinned = json.loads((ROOT / "data" / "documents" / "splits.json").read_text())
    assert sorted(set(dataset["test"]["group"])) == pinned["test"]
    assert sorted(set(dataset["validation"]["group"])) == pinned["validation"]
