"""Corpus tools whose figures the docs quote: leave-one-field-out and the agreement round."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import TINY, compose_train, document_sample, write_jsonl
from omegaconf import open_dict

from claimstance.commands.agreement import agreement, draw_sample
from claimstance.data.annotations import load_annotations


@pytest.mark.slow  # trains one tiny model per left-out field
def test_cross_field_scores_each_left_out_field_on_all_its_documents(tmp_path):
    from claimstance.commands.cross_field import run

    rows = document_sample(3)
    write_jsonl(tmp_path / "docs" / "docs.jsonl", rows)
    fields = sorted({row["domain"] for row in rows})[:2]
    cfg = compose_train(
        [
            *TINY,
            "trainer.args.num_train_epochs=1",
            f"data.annotations={tmp_path}/docs",
            f"fields=[{','.join(fields)}]",
            f"output={tmp_path}/cross_field",
        ],
        tmp_path,
        config_name="cross_field",
    )
    with open_dict(cfg):
        cfg.export.onnx = False
        del cfg["hydra"]  # as in a script run: Hydra hands the task its config without its own node
    table = run(cfg)
    sizes = Counter(row["domain"] for row in rows)
    assert [row["field"] for row in table] == fields
    for row in table:
        assert row["sentences"] == sizes[row["field"]]
        assert row["documents"] == len({r["doc"] for r in rows if r["domain"] == row["field"]})
        assert row["train_sentences"] < len(rows) - sizes[row["field"]]  # a validation share is held back too
    page = (tmp_path / "cross_field.md").read_text()
    assert (
        all(re.search(rf"^\| {field} +\|", page, re.MULTILINE) for field in fields)
        and "Mean macro-F1 over 2 left-out fields" in page
    )
    assert json.loads((tmp_path / "cross_field.json").read_text()) == table


def test_cross_field_rejects_an_unknown_field(tmp_path):
    from claimstance.commands.cross_field import run

    write_jsonl(tmp_path / "docs" / "docs.jsonl", document_sample(1))
    cfg = compose_train(
        [], tmp_path, config_name="cross_field", values={"data.annotations": f"{tmp_path}/docs", "fields": ["astrology"]}
    )
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2


def test_per_label_draw_is_balanced_blind_and_seeded():
    from conftest import ROOT

    rows = load_annotations(ROOT / "data" / "documents", ["commitment", "caution", "request", "none"]).rows
    sample = draw_sample(rows, 200, seed=7, per_label=True)
    label_of = {row.id: row.label for row in rows}
    assert Counter(label_of[item["id"]] for item in sample) == {"commitment": 50, "caution": 50, "request": 50, "none": 50}
    assert all(set(item) == {"id", "text"} for item in sample)  # the annotator never sees a label
    assert sample == draw_sample(rows, 200, seed=7, per_label=True) != draw_sample(rows, 200, seed=8, per_label=True)


def test_agreement_kappa_overall_and_per_label():
    labels = ["commitment", "caution", "request", "none"]
    first = {"a": "commitment", "b": "caution", "c": "request", "d": "none", "e": "none", "f": "caution"}
    second = dict(first) | {"f": "none"}  # one caution read as none
    report = agreement(first, second, labels)
    assert report["raw_agreement"] == pytest.approx(5 / 6)
    assert report["per_label_kappa"]["commitment"] == 1.0 and report["per_label_kappa"]["request"] == 1.0
    assert report["per_label_kappa"]["caution"] < 1.0 and report["per_label_kappa"]["none"] < 1.0
    assert report["disagreements"] == [{"id": "f", "first": "caution", "second": "none"}]
    assert 0 < report["cohen_kappa"] < 1


def test_agreement_action_must_be_draw_or_score(tmp_path):
    from claimstance.commands.agreement import run

    cfg = compose_train([], tmp_path, config_name="agreement", values={"action": "drow"})
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    assert not (tmp_path / "data" / "agreement").exists()
