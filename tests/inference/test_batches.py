"""A batch survives a bad file: the good files are tagged, the bad ones listed once, the exit status says so.

A fake predictor stands in for the model: what is tested is which files are read, skipped and reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_train, write_jsonl

from claimstance.commands.predict import run
from claimstance.errors import SKIPPED_EXIT
from claimstance.inference import tagging
from claimstance.inference.documents import FileError, read_file_documents
from claimstance.inference.tagging import errors_path, run_tagging


class FakePredictor:
    """Labels a sentence ``long`` past 30 characters, else ``short``; records what each call got."""

    labels = ["long", "short"]
    calls: list[list] = []

    def __init__(self, *args, **kwargs) -> None:
        pass

    def predict(self, texts, min_confidence=None) -> list[dict]:
        FakePredictor.calls.append(list(texts))
        rows = []
        for item in texts:
            text = item["text"] if isinstance(item, dict) else item
            label = "long" if len(text) > 30 else "short"
            probabilities = {"long": 0.9 if label == "long" else 0.1, "short": 0.1 if label == "long" else 0.9}
            rows.append({"text": item, "label": label, "score": 0.9, "probabilities": probabilities, "abstained": False})
        return rows


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    FakePredictor.calls = []
    monkeypatch.setattr(tagging, "Predictor", FakePredictor)


@pytest.fixture
def news(tmp_path: Path) -> Path:
    """Three good articles, one binary file and one Latin-1 file, in name order a, b, c, d, e."""
    folder = tmp_path / "news"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("The minister will resign on Friday, aides said.\n\nShort one.\n", encoding="utf-8")
    (folder / "b.txt").write_bytes(b"A first line.\n\x00\x01\x02 binary payload\n")
    (folder / "c.txt").write_text("Unions urged the board to delay the vote.\n", encoding="utf-8")
    (folder / "d.txt").write_bytes("Line one is fine.\nLe ministre a d\u00e9clar\u00e9 la gr\u00e8ve.\n".encode("latin-1"))
    (folder / "sub" / "e.md").write_text("Leaders urge calm\n\nThe mayor said she will open two shelters.\n")
    return folder


def predict_cfg(tmp_path: Path, *overrides: str):
    return compose_train(list(overrides), tmp_path, config_name="predict", values={"model_dir": str(tmp_path / "model")})


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_folder_with_bad_files_tags_the_rest_and_lists_them(tmp_path, news, caplog):
    output = tmp_path / "out" / "tags.jsonl"
    cfg = predict_cfg(tmp_path, f"input={news}", "input_format=article", f"output={output}", "summary=false")
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == SKIPPED_EXIT == 3
    rows = read_rows(output)
    assert [row["doc"] for row in rows] == ["a.txt", "a.txt", "c.txt", "sub/e.md", "sub/e.md"]  # input order, bad files absent
    assert rows[0]["label"] == "long" and rows[1]["label"] == "short" and rows[1]["text"] == "Short one."
    errors = read_rows(errors_path(output))
    assert errors == [
        {"file": "b.txt", "line": 2, "problem": "NUL byte; the input is binary, not text"},
        {"file": "d.txt", "line": 2, "problem": "invalid UTF-8 byte at column 16; save the file as UTF-8"},
    ]
    assert caplog.text.count("b.txt:2: NUL byte") == 1 and caplog.text.count("d.txt:2: invalid UTF-8") == 1
    assert "Skipped 2 of 5 file(s)" in caplog.text and str(errors_path(output)) in caplog.text
    assert sorted(p.name for p in output.parent.iterdir()) == ["tags.jsonl", "tags.jsonl.errors.jsonl"]  # nothing staged left


def test_on_error_skip_exits_0_and_still_lists_the_files(tmp_path, news):
    output = tmp_path / "tags.jsonl"
    cfg = predict_cfg(tmp_path, f"input={news}", "input_format=article", f"output={output}", "on_error=skip")
    assert run(cfg) == 5
    assert [row["file"] for row in read_rows(errors_path(output))] == ["b.txt", "d.txt"]


def test_on_error_fail_stops_at_the_first_bad_file_and_writes_nothing(tmp_path, news, caplog):
    output = tmp_path / "tags.jsonl"
    cfg = predict_cfg(tmp_path, f"input={news}", "input_format=article", f"output={output}", "on_error=fail")
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    assert "b.txt:2: NUL byte" in caplog.text and "d.txt" not in caplog.text
    assert not output.exists() and not errors_path(output).exists()


def test_a_single_bad_file_still_exits_2(tmp_path, news, caplog):
    output = tmp_path / "tags.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, f"input={news / 'd.txt'}", f"output={output}"))
    assert exit_info.value.code == 2 and "d.txt:2: invalid UTF-8 byte at column 16" in caplog.text
    assert not output.exists() and not errors_path(output).exists()


def test_a_glob_is_a_batch_too_and_a_clean_run_clears_a_stale_errors_file(tmp_path, news):
    output = tmp_path / "tags.jsonl"
    errors_path(output).write_text('{"file": "old.txt"}\n')
    tagged = run_tagging(predict_cfg(tmp_path, f"input='{news}/[ac].txt'", f"output={output}"))
    assert tagged.skipped == [] and tagged.count == 3 and not errors_path(output).exists()
    tagged = run_tagging(predict_cfg(tmp_path, f"input={news}/*.txt", f"output={output}"))
    assert [str(error) for error in tagged.skipped] == [
        f"{news}/b.txt:2: NUL byte; the input is binary, not text",
        f"{news}/d.txt:2: invalid UTF-8 byte at column 16; save the file as UTF-8",
    ]


def test_a_bad_row_deep_in_a_jsonl_file_skips_the_whole_file(tmp_path):
    folder = tmp_path / "rows"
    write_jsonl(folder / "good.jsonl", [{"text": "The council will publish the audit."}])
    bad = write_jsonl(folder / "bad.jsonl", [{"text": f"Sentence {i}."} for i in range(5)])
    with bad.open("a", encoding="utf-8") as handle:
        handle.write('{"text": "cut off\n')
    output = tmp_path / "tags.jsonl"
    tagged = run_tagging(predict_cfg(tmp_path, f"input={folder}", f"output={output}"))
    assert [row["doc"] for row in read_rows(output)] == ["good.jsonl"]
    assert [error.as_row() for error in tagged.skipped] == [
        {"file": "bad.jsonl", "line": 6, "problem": "malformed JSON (Unterminated string starting at)"}
    ]


def test_a_file_level_problem_has_no_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(Exception) as caught:
        read_file_documents(empty)
    assert FileError.of(empty, "empty.txt", caught.value) == FileError("empty.txt", None, "no sentences in the file")
    assert str(FileError("x.txt", None, "gone")) == "x.txt: gone"


def test_text_pair_goes_to_the_model_and_stays_in_the_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(FakePredictor, "text_pair", True, raising=False)
    source = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"id": 1, "text": "We will   cut fees.", "text_pair": "fees"},
            {"id": 2, "text": "The council rejected the plan outright.", "text_pair": "the  plan"},
        ],
    )
    output = tmp_path / "tags.jsonl"
    run_tagging(predict_cfg(tmp_path, f"input={source}", f"output={output}"))
    assert FakePredictor.calls == [
        [
            {"text": "We will cut fees.", "text_pair": "fees"},
            {"text": "The council rejected the plan outright.", "text_pair": "the plan"},
        ]
    ]
    first, second = read_rows(output)
    assert first["text_pair"] == "fees" and first["label"] == "short" and first["text"] == "We will   cut fees."
    assert second["text_pair"] == "the  plan" and second["label"] == "long"


@pytest.mark.parametrize(
    ("pair_model", "rows", "message"),
    [
        (
            True,
            [{"text": "A.", "text_pair": "x"}, {"text": "B."}],
            "pairs.jsonl:2: this model was trained on text pairs; each row",
        ),
        (False, [{"text": "A."}, {"text": "B.", "text_pair": "x"}], "pairs.jsonl:2: this model was trained on single sentences"),
    ],
)
def test_rows_that_do_not_match_the_model_are_named(tmp_path, monkeypatch, caplog, pair_model, rows, message):
    monkeypatch.setattr(FakePredictor, "text_pair", pair_model, raising=False)
    source = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, f"input={source}"))
    assert exit_info.value.code == 2 and message in caplog.text and FakePredictor.calls == []


def test_an_empty_text_pair_is_named(tmp_path, caplog):
    source = write_jsonl(
        tmp_path / "pairs.jsonl", [{"text": "A sentence.", "text_pair": "fees"}, {"text": "B.", "text_pair": ""}]
    )
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, f"input={source}"))
    assert exit_info.value.code == 2
    assert "pairs.jsonl:2: field 'text_pair' must be a non-empty string when given" in caplog.text


@pytest.mark.parametrize(("key", "value"), [("on_error", "ignore"), ("engine", "spark")])
def test_unknown_on_error_and_engine_are_named(tmp_path, news, caplog, key, value):
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, f"input={news}", f"{key}={value}"))
    assert exit_info.value.code == 2 and f"{key} must be one of" in caplog.text and repr(value) in caplog.text
