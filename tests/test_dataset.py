"""Dataset build: label selection, stratified seeded split without leakage, staleness, atomic save."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import compose_train, corpus_sample, write_jsonl

from claimstance.annotations import AnnotationError
from claimstance.corpus import normalise_text
from claimstance.dataset import build_dataset, prepare_dataset


def data_cfg(tmp_path, annotations, *overrides):
    return compose_train([f"data.annotations={annotations}", "data.challenge=null", *overrides], tmp_path).data


def test_split_is_stratified_seeded_and_leak_free(tmp_path, small_corpus):
    cfg = data_cfg(tmp_path, small_corpus)
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
    assert summary["left_out_by_label"] == {"none": 40}
    again, _ = build_dataset(cfg)
    assert list(again["test"]["id"]) == list(dataset["test"]["id"])
    other, _ = build_dataset(data_cfg(tmp_path, small_corpus, "data.split_seed=99"))
    assert list(other["test"]["id"]) != list(dataset["test"]["id"])


def test_four_label_set_keeps_none(tmp_path, small_corpus):
    dataset, summary = build_dataset(data_cfg(tmp_path, small_corpus, "data.labels=[commitment,caution,request,none]"))
    assert dataset["train"].features["label"].names[-1] == "none"
    assert summary["left_out_by_label"] == {}


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
        build_dataset(data_cfg(tmp_path, small_corpus, "data.split.train=0.8"))


def test_saved_dataset_is_reused_until_annotations_change(tmp_path, small_corpus, caplog):
    cfg = data_cfg(tmp_path, small_corpus)
    prepare_dataset(cfg)
    summary = json.loads((tmp_path / "data" / "processed" / "default" / "summary.json").read_text())
    assert summary["counts"]["train"]["total"] == 90  # 120 - 18 test - 12 validation
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
    with pytest.raises(AnnotationError, match="also in the training annotations"):
        build_dataset(data_cfg(tmp_path, small_corpus, f"data.challenge={challenge}"))
