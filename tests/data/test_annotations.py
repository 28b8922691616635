"""Validation of annotation files: every problem reported as file:line, all at once."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl

from claimstance.data.annotations import AnnotationError, load_annotations

KNOWN = ["commitment", "caution", "request", "none"]


def row(i: int, **changes) -> dict:
    base = {
        "id": f"r{i}",
        "text": f"Sentence number {i} about a ministry.",
        "label": "commitment",
        "source": "authored",
        "domain": "economy",
    }
    return base | changes


def problems_for(tmp_path, lines: list[str]) -> list[str]:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(AnnotationError) as err:
        load_annotations(path, KNOWN)
    return err.value.problems


def test_clean_file_loads_every_row(tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [row(1), row(2, label="caution", note="R3: hedge", speaker="the bank")])
    result = load_annotations(path, KNOWN)
    assert [r.id for r in result.rows] == ["r1", "r2"]
    assert result.rows[1].note == "R3: hedge" and result.rows[1].where.endswith("ok.jsonl:2")


def test_malformed_json_names_file_and_line(tmp_path):
    problems = problems_for(tmp_path, [json.dumps(row(1)), '{"id": "r2", "text": "broken'])
    assert len(problems) == 1 and "bad.jsonl:2: malformed JSON" in problems[0]


def test_missing_field(tmp_path):
    record = row(1)
    del record["domain"]
    assert problems_for(tmp_path, [json.dumps(record)]) == [f"{tmp_path}/bad.jsonl:1: missing required field 'domain'"]


def test_whitespace_text(tmp_path):
    problems = problems_for(tmp_path, [json.dumps(row(1, text="   \t "))])
    assert problems == [f"{tmp_path}/bad.jsonl:1: field 'text' is empty or whitespace"]


def test_unknown_label_and_case_variant(tmp_path):
    problems = problems_for(tmp_path, [json.dumps(row(1, label="promise")), json.dumps(row(2, label="Commitment"))])
    assert "bad.jsonl:1: unknown label 'promise'; use one of commitment, caution, request, none" in problems[0]
    assert "bad.jsonl:2: unknown label 'Commitment'; write 'commitment'" in problems[1]


def test_label_of_wrong_type(tmp_path):
    problems = problems_for(tmp_path, [json.dumps(row(1, label=2))])
    assert problems == [f"{tmp_path}/bad.jsonl:1: field 'label' must be a string, got int 2"]


def test_duplicate_id_across_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [row(1)])
    write_jsonl(tmp_path / "b.jsonl", [row(1, text="A different sentence entirely.")])
    with pytest.raises(AnnotationError) as err:
        load_annotations(tmp_path, KNOWN)
    assert err.value.problems == [f"{tmp_path}/b.jsonl:1: duplicate id 'r1' (first used at {tmp_path}/a.jsonl:1)"]


def test_same_text_with_two_labels_after_normalising(tmp_path):
    problems = problems_for(
        tmp_path, [json.dumps(row(1, text="The Bank  will act.")), json.dumps(row(2, text="the bank will act.", label="caution"))]
    )
    assert len(problems) == 1
    assert "bad.jsonl:2: same text as" in problems[0] and "bad.jsonl:1" in problems[0]


def test_exact_duplicates_are_dropped_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [row(1), row(2, text="sentence NUMBER 1 about a ministry."), row(3)])
    result = load_annotations(path, KNOWN)
    assert [r.id for r in result.rows] == ["r1", "r3"]
    assert result.duplicates_dropped == 1


def test_all_problems_reported_together(tmp_path):
    problems = problems_for(tmp_path, ["not json", json.dumps(row(2, label="x")), json.dumps(row(3, text=""))])
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["1", "2", "3"]


def test_bom_and_crlf_load_fine(tmp_path):
    path = tmp_path / "win.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(row(1)) + "\r\n" + json.dumps(row(2)) + "\r\n").encode())
    assert [r.id for r in load_annotations(path, KNOWN).rows] == ["r1", "r2"]


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bytes.jsonl"
    path.write_bytes((json.dumps(row(1)) + "\n").encode() + b'{"id": "r2", "text": "caf\xe9"}\n')
    with pytest.raises(AnnotationError) as err:
        load_annotations(path, KNOWN)
    assert err.value.problems[0].startswith(f"{path}:2: invalid UTF-8 byte")


def test_empty_file_missing_path_and_empty_folder(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(AnnotationError, match="empty.jsonl: file is empty"):
        load_annotations(tmp_path / "empty.jsonl", KNOWN)
    with pytest.raises(AnnotationError, match="nowhere: no such file or folder"):
        load_annotations(tmp_path / "nowhere", KNOWN)
    (tmp_path / "hollow").mkdir()
    with pytest.raises(AnnotationError, match="hollow: folder holds no"):
        load_annotations(tmp_path / "hollow", KNOWN)


def test_unknown_field_is_reported(tmp_path):
    problems = problems_for(tmp_path, [json.dumps(row(1, lable="caution"))])
    assert "unknown field(s) lable" in problems[0]
