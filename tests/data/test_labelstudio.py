"""Label Studio and doccano formats: the labelling config, tasks with pre-annotations, exports read back, bad exports."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import write_jsonl

from claimstance.data.labelstudio import (
    choice_result,
    label_config,
    read_doccano,
    read_export,
    read_labelstudio,
    task,
    write_table,
)
from claimstance.data.textio import InputError
from claimstance.errors import ConfigError

LABELS = ["favor", "against", "neutral"]


def annotation(label: str, when: str, who: int = 1, cancelled: bool = False) -> dict:
    return {"completed_by": who, "result": choice_result(label), "was_cancelled": cancelled, "updated_at": when}


def ls_task(ident: int, text: str, annotations: list[dict], suggestion: str | None = None, **data) -> dict:
    """A task as Label Studio's JSON export writes it: ``predictions`` as ids, each annotation with the prediction it
    started from (and some fields this reader ignores)."""
    if suggestion:
        prediction = {"id": ident, "model_version": "run-1", "score": 0.61, "result": choice_result(suggestion)}
        annotations = [item | {"prediction": prediction} for item in annotations]
    return {
        "id": 100 + ident,
        "data": {"id": f"d:{ident}", "text": text, **data},
        "annotations": annotations,
        "predictions": [ident] if suggestion else [],
        "drafts": [],
        "inner_id": ident,
    }


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def test_label_config_has_one_choice_per_label_and_a_second_text_for_pairs():
    root = ET.fromstring(label_config(["favor", 'a "quoted" & <odd> one']))
    assert [c.get("value") for c in root.iter("Choice")] == ["favor", 'a "quoted" & <odd> one']
    choices = root.find("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "text", "single")
    assert [t.get("value") for t in root.iter("Text")] == ["$text"]
    paired = ET.fromstring(label_config(LABELS, text_pair=True))
    assert [t.get("value") for t in paired.iter("Text")] == ["$text", "$text_pair"]


@pytest.mark.parametrize("labels", [[], ["favor", "favor"], ["favor", ""]])
def test_label_config_rejects_a_bad_label_set(labels):
    with pytest.raises(ConfigError, match="labels"):
        label_config(labels)


def test_task_carries_the_fields_and_the_model_suggestion():
    row = {"id": "a.txt:0", "text": "We back the plan.", "text_pair": "the plan", "doc": "a.txt", "sentence": 0}
    prediction = {"label": "favor", "score": 0.83, "probabilities": {}, "abstained": False}
    made = task(row, prediction, model_version="run-1")
    assert made["data"] == row
    assert made["predictions"] == [{"model_version": "run-1", "score": 0.83, "result": choice_result("favor")}]
    assert "predictions" not in task(row, {"label": None, "score": 0.4})  # an abstention suggests nothing
    with pytest.raises(InputError, match="'text'"):
        task({"id": "x", "text": "  "})


def test_labelstudio_export_reads_back_as_table_rows(tmp_path):
    export = [
        ls_task(1, "We back the plan.", [annotation("favor", "2026-01-01T10:00:00Z", who=3)], "against", doc="a.txt"),
        ls_task(2, "No annotation yet.", [], "neutral"),
        ls_task(3, "Cancelled only.", [annotation("favor", "2026-01-01T10:00:00Z", cancelled=True)]),
        ls_task(
            4,
            "Two annotators disagree.",
            [annotation("against", "2026-01-02T09:00:00Z", who=1), annotation("neutral", "2026-01-01T09:00:00Z", who=2)],
        ),
        ls_task(5, "Pair.", [annotation("neutral", "2026-01-01T10:00:00Z")], text_pair="the plan", label="old"),
        ls_task(6, "Objects.", [annotation("favor", "t")]) | {"predictions": [{"score": 0.9, "result": choice_result("favor")}]},
    ]
    imported = read_labelstudio(write_json(tmp_path / "export.json", export))
    assert (imported.skipped, imported.disagreements) == (2, 1)
    first, disputed, pair, objects = imported.rows
    assert first == {
        "id": "d:1",
        "text": "We back the plan.",
        "label": "favor",
        "annotator": "3",
        "suggested_label": "against",
        "suggested_score": 0.61,
        "model_version": "run-1",
        "doc": "a.txt",
    }
    assert (disputed["label"], disputed["annotator"]) == ("against", "1")  # the most recent annotation wins
    assert (pair["text_pair"], pair["input_label"], pair["suggested_label"]) == ("the plan", "old", None)
    assert (objects["suggested_label"], objects["suggested_score"]) == ("favor", 0.9)  # predictions given as objects


def test_doccano_export_reads_back_with_the_file_as_annotator(tmp_path):
    path = write_jsonl(
        tmp_path / "alice.jsonl",
        [
            {"id": 7, "text": "We back the plan.", "label": ["favor"], "source": "mail"},
            {"id": 8, "text": "Not labelled.", "label": []},
            {"id": 9, "text": "Agreeing twice.", "label": ["neutral", "neutral"], "username": "bob"},
        ],
    )
    imported = read_export(path, "doccano")
    assert imported.skipped == 1
    assert imported.rows[0] == {
        "id": "7",
        "text": "We back the plan.",
        "label": "favor",
        "annotator": "alice",
        "suggested_label": None,
        "suggested_score": None,
        "model_version": None,
        "source": "mail",
    }
    assert (imported.rows[1]["label"], imported.rows[1]["annotator"]) == ("neutral", "bob")
    merged = write_jsonl(tmp_path / "all.jsonl", [{"id": 1, "text": "x", "label": ["favor"]}])
    assert read_doccano(merged).rows[0]["annotator"] is None  # a collaborative export names nobody


BAD_LABELSTUDIO = [
    ({"tasks": []}, "is a list of tasks, got dict"),
    ([{"id": 4, "annotations": []}], "task 0 (id 4): field 'data' must be an object"),
    ([ls_task(1, "", [])], "task 0 (id 101): field 'data.text' must be a non-empty string"),
    ([ls_task(1, "x", {"result": []})], "field 'annotations' must be a list"),
    (
        [ls_task(1, "x", [{"result": [{"type": "choices", "from_name": "label", "value": {"choices": "favor"}}]}])],
        "field 'annotations[0].result[].value.choices' must be a list of label strings",
    ),
    (
        [ls_task(1, "x", [{"result": [{"type": "choices", "from_name": "label", "value": {"choices": ["favor", "neutral"]}}]}])],
        "holds 2 labels",
    ),
    ([ls_task(1, "x", [{"result": [{"type": "labels", "value": {}}]}])], "holds no choices result"),
    ([ls_task(1, "x", [annotation("favor", "t")]) | {"predictions": "p"}], "field 'predictions' must be a list"),
]


@pytest.mark.parametrize(("export", "message"), BAD_LABELSTUDIO)
def test_a_malformed_labelstudio_export_names_the_file_task_and_field(tmp_path, export, message):
    path = write_json(tmp_path / "export.json", export)
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        read_labelstudio(path)
    assert str(caught.value).startswith(str(path))


def test_labelstudio_export_that_is_not_json(tmp_path):
    path = tmp_path / "export.json"
    path.write_text('[{"id": 1,\n "data": }]', encoding="utf-8")
    with pytest.raises(InputError, match=r"export.json:2: malformed JSON"):
        read_labelstudio(path)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": 1, "label": ["favor"]}, "field 'text' must be a non-empty string"),
        ({"id": 1, "text": "x", "label": [3]}, "field 'label' must be a list of label strings"),
        ({"id": 1, "text": "x", "label": ["favor", "against"]}, "holds 2 different labels"),
    ],
)
def test_a_malformed_doccano_export_names_the_file_line_and_field(tmp_path, record, message):
    path = write_jsonl(tmp_path / "alice.jsonl", [{"id": 0, "text": "fine", "label": ["favor"]}, record])
    with pytest.raises(InputError, match=message) as caught:
        read_doccano(path)
    assert str(caught.value).startswith(f"{path}:2:")


def test_the_wrong_format_gets_a_hint(tmp_path):
    doccano = write_json(tmp_path / "one.json", {"id": 1, "text": "x", "label": ["favor"]})
    with pytest.raises(InputError, match="use format=doccano"):
        read_export(doccano, "labelstudio")
    with pytest.raises(InputError, match="use format=labelstudio"):
        read_export(doccano, "doccano")
    with pytest.raises(ConfigError, match="format must be one of"):
        read_export(doccano, "csv")


def test_table_is_written_as_jsonl_or_csv(tmp_path):
    rows = [{"id": "1", "text": "a, b", "label": "favor", "meta": {"k": 1}}, {"id": "2", "text": "c", "label": "neutral"}]
    write_table(rows, tmp_path / "t.jsonl")
    assert [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()] == rows
    write_table(rows, tmp_path / "t.csv")
    with (tmp_path / "t.csv").open(newline="") as handle:
        read = list(csv.DictReader(handle))
    assert read[0] == {"id": "1", "text": "a, b", "label": "favor", "meta": '{"k": 1}'}
    assert read[1]["meta"] == ""
    with pytest.raises(ConfigError, match="output must end in"):
        write_table(rows, tmp_path / "t.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.jsonl"]
