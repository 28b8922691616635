"""Tagging documents with an export: positions, passthrough, calibration, abstention, many files in one call."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, compose_train, run_script, write_jsonl
from omegaconf import OmegaConf

from claimstance.commands.predict import run
from claimstance.data.textio import InputError
from claimstance.errors import ConfigError
from claimstance.inference.articles import model_text
from claimstance.inference.artifacts import CALIBRATION_FILE, ExportError
from claimstance.inference.documents import input_files, read_inputs
from claimstance.inference.predictor import Predictor, softmax

SEED = ROOT / "seeds" / "000_ccd737c3ae17ccd4.txt"


def predict_cfg(tmp_path: Path, model_dir: Path, *overrides: str):
    return compose_train(list(overrides), tmp_path, config_name="predict", values={"model_dir": str(model_dir)})


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def wrapped(text: str, width: int) -> str:
    """Each line of a one-paragraph-per-line text hard-wrapped at ``width``, paragraphs apart by a blank line."""
    return "\n\n".join(textwrap.fill(line, width) for line in text.splitlines() if line.strip()) + "\n"


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    """A folder with the seed article as it is, hard-wrapped at 60 columns, and in a subfolder."""
    folder = tmp_path / "articles"
    (folder / "more").mkdir(parents=True)
    original = SEED.read_text(encoding="utf-8")
    (folder / "seed.txt").write_text(original, encoding="utf-8")
    (folder / "seed_wrapped.txt").write_text(wrapped(original, 60), encoding="utf-8")
    (folder / "more" / "short.md").write_text("Leaders urge calm\n\nThe mayor said she will open two shelters.\n")
    (folder / ".hidden.txt").write_text("never read\n")
    return folder


@pytest.mark.slow
def test_a_folder_goes_to_jsonl_and_html_in_one_call(tiny_export, tmp_path, articles, capsys):
    output, html = tmp_path / "out" / "tags.jsonl", tmp_path / "out" / "report.html"
    cfg = predict_cfg(tmp_path, tiny_export, f"input={articles}", "input_format=article", f"output={output}", f"html={html}")
    count = run(cfg)
    rows = read_rows(output)
    assert count == len(rows) > 10
    assert {row["doc"] for row in rows} == {"seed.txt", "seed_wrapped.txt", "more/short.md"}
    for name in ("seed.txt", "seed_wrapped.txt", "more/short.md"):
        original = (articles / name).read_text(encoding="utf-8")
        mine = [row for row in rows if row["doc"] == name]
        assert [row["sentence"] for row in mine] == list(range(len(mine)))
        for row in mine:
            assert row["text"] == original[row["start"] : row["end"]]
            assert set(row) >= {"paragraph", "heading", "label", "score", "probabilities", "abstained"}
    unwrapped = [model_text(r["text"]) for r in rows if r["doc"] == "seed.txt"]
    rewrapped = [model_text(r["text"]) for r in rows if r["doc"] == "seed_wrapped.txt"]
    assert unwrapped == rewrapped
    assert [r["heading"] for r in rows if r["doc"] == "more/short.md"] == [True, False]
    page = html.read_text(encoding="utf-8")
    assert "seed_wrapped.txt" in page and "The mayor said she will open two shelters." in page
    out = capsys.readouterr().out
    assert "seed.txt" in out and "short.md" in out  # the per-document summary


@pytest.mark.slow
def test_jsonl_fields_pass_through_unchanged(tiny_export, tmp_path):
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a-1", "text": "The council will publish the audit.", "label": "commitment", "desk": {"city": "Lyon"}},
            {"id": 7, "text": "Residents urged the mayor to act.", "tags": ["x", 2]},
        ],
    )
    output = tmp_path / "out.jsonl"
    run(predict_cfg(tmp_path, tiny_export, f"input={source}", f"output={output}"))
    first, second = read_rows(output)
    assert first["id"] == "a-1" and first["desk"] == {"city": "Lyon"} and first["input_label"] == "commitment"
    assert first["label"] in json.loads((tiny_export / "config.json").read_text())["label2id"]
    assert second["id"] == 7 and second["tags"] == ["x", 2] and second["doc"] == "in.jsonl" and second["sentence"] == 1


@pytest.mark.slow
def test_min_confidence_abstains_below_the_threshold(tiny_export):
    predictor = Predictor(tiny_export, backend="onnx", calibrated=False)  # the tiny model's calibrated scores are all ~1/4
    texts = SEED.read_text(encoding="utf-8").split(". ")[:20]
    plain = predictor.predict(texts)
    scores = sorted({row["score"] for row in plain})
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # between two scores: no ties
    guarded = predictor.predict(texts, min_confidence=threshold)
    for before, after in zip(plain, guarded, strict=True):
        if before["score"] < threshold:
            assert after["label"] is None and after["abstained"] is True
        else:
            assert after["label"] == before["label"] and after["abstained"] is False
        assert after["probabilities"] == before["probabilities"]
    assert any(row["abstained"] for row in guarded) and not all(row["abstained"] for row in guarded)


@pytest.mark.slow
def test_min_confidence_auto_is_the_exports_fitted_threshold(tiny_export, tmp_path, caplog):
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    calibration = json.loads((export / "calibration.json").read_text())
    plain = [json.loads(line) for line in _tag(tmp_path / "plain.jsonl", predict_cfg(tmp_path, export, f"input={SEED}"))]
    scores = sorted({row["score"] for row in plain})
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    calibration["min_confidence"] = {"target": 0.95, "threshold": threshold, "coverage": 0.5}
    (export / "calibration.json").write_text(json.dumps(calibration))
    rows = [
        json.loads(line)
        for line in _tag(tmp_path / "auto.jsonl", predict_cfg(tmp_path, export, f"input={SEED}", "min_confidence=auto"))
    ]
    assert [row["abstained"] for row in rows] == [row["score"] < threshold for row in plain]
    assert any(row["abstained"] for row in rows) and not all(row["abstained"] for row in rows)
    calibration["min_confidence"]["threshold"] = None  # no threshold reached the target: auto cannot answer
    (export / "calibration.json").write_text(json.dumps(calibration))
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, export, "text=Hello", "min_confidence=auto"))
    assert exit_info.value.code == 2 and "no threshold reached 0.95 precision on validation" in caplog.text


def _tag(output: Path, cfg) -> list[str]:
    """Run predict into ``output`` and return its lines."""
    OmegaConf.update(cfg, "output", str(output), merge=True)
    run(cfg)
    return output.read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("value", [0, 1, 1.5, -0.2, "high"])
def test_min_confidence_outside_zero_one_is_refused(tiny_export, tmp_path, value):
    with pytest.raises(ConfigError, match="min_confidence must be a number in \\(0, 1\\)"):
        Predictor(tiny_export, backend="onnx").predict(["A sentence."], min_confidence=value)
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, tiny_export, "text=Hello", f"min_confidence={value}"))
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_export_temperature_scales_the_probabilities(tiny_export):
    calibration = json.loads((tiny_export / CALIBRATION_FILE).read_text())
    predictor = Predictor(tiny_export, backend="onnx")
    assert predictor.temperature == calibration["temperature"] != 1.0
    texts = ["The minister said she will sign the treaty.", "Unions urged the board to delay the vote."]
    logits = predictor.predict_logits(texts)
    np.testing.assert_allclose(predictor.predict_proba(texts), softmax(logits / calibration["temperature"]), atol=1e-6)
    raw = Predictor(tiny_export, backend="onnx", calibrated=False)
    np.testing.assert_allclose(raw.predict_proba(texts), softmax(logits), atol=1e-6)
    assert {"validation", "test"} <= set(calibration["splits"]) and "ece_after" in calibration["splits"]["test"]


@pytest.mark.slow
def test_tokenizer_json_encodes_like_autotokenizer(tiny_export):
    from transformers import AutoTokenizer

    texts = ["Short.", "A much longer sentence, with commas; and a café — in Zürich!", "x " * 700]
    predictor = Predictor(tiny_export, backend="onnx")
    reference = AutoTokenizer.from_pretrained(str(tiny_export))(texts, truncation=True, max_length=predictor.max_length)
    ours = predictor._tokenizer.encode_batch(texts)
    assert [e.ids for e in ours] == reference["input_ids"]
    assert [e.type_ids for e in ours] == reference["token_type_ids"]


@pytest.mark.slow
def test_onnx_path_never_imports_torch(tiny_export):
    code = (
        "import sys; from claimstance.inference.predictor import Predictor; "
        f"print(Predictor({str(tiny_export)!r}, backend='onnx').predict(['Hello there.'])[0]['label']); "
        "print(sorted(m for m in ('torch', 'transformers', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.slow
def test_training_points_outputs_latest_at_its_export(tiny_export):
    latest = tiny_export.parents[1] / "outputs" / "latest"
    assert latest.is_symlink() and latest.resolve() == tiny_export.resolve()


def test_bad_inputs_are_named(tmp_path):
    empty = tmp_path / "pictures"
    empty.mkdir()
    (empty / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(InputError, match=r"pictures: no text files .* it holds 1 other file\(s\), e\.g\. photo\.png"):
        input_files(empty)
    with pytest.raises(InputError, match=r"the pattern matches no files"):
        input_files(str(tmp_path / "nothing-*.txt"))
    with pytest.raises(InputError, match=r"does not exist"):
        input_files(tmp_path / "missing.txt")


@pytest.mark.slow
def test_predict_cli_binary_article_in_a_folder_is_skipped_or_stops_the_run(tiny_export, tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "a.txt").write_text("The minister will resign.\n")
    (folder / "b.txt").write_bytes(b"ok line\n\x00\x01\x02binary")
    output = tmp_path / "out.jsonl"
    base = [f"model_dir={tiny_export}", f"input={folder}", "input_format=article", f"output={output}"]
    result = run_script("predict.py", *base, "on_error=fail", cwd=tmp_path)
    assert result.returncode == 2
    assert "b.txt:2: NUL byte; the input is binary" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists() and list(tmp_path.glob(".out.jsonl*")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["news"]  # no run folder, no log file
    result = run_script("predict.py", *base, cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    assert [row["doc"] for row in read_rows(output)] == ["a.txt"]
    assert read_rows(tmp_path / "out.jsonl.errors.jsonl") == [
        {"file": "b.txt", "line": 2, "problem": "NUL byte; the input is binary, not text"}
    ]
    assert result.stderr.count("b.txt:2: NUL byte") == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_unknown_backend_and_missing_onnx_are_named(tiny_export, tmp_path, caplog):
    with pytest.raises(ConfigError, match=r"backend must be one of auto, onnx, .*torch.*, got 'foo'"):
        Predictor(tiny_export, backend="foo")
    plain = shutil.copytree(tiny_export, tmp_path / "plain", ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(ExportError, match=r"model.onnx: no ONNX model in this export; use backend=torch"):
        Predictor(plain, backend="onnx")
    cases = [
        (tiny_export, ["text=Hello", "backend=foo"], "backend must be one of"),
        (plain, ["text=Hello", "backend=onnx"], "no ONNX model in this export"),
        (tiny_export, [f"input={SEED}", "input_format=pdf"], "input_format must be one of auto, lines, jsonl, article"),
    ]
    for model_dir, overrides, message in cases:
        caplog.clear()
        with pytest.raises(SystemExit) as exit_info:
            run(predict_cfg(tmp_path, model_dir, *overrides))
        assert exit_info.value.code == 2 and message in caplog.text


def test_a_baseline_export_is_named_as_such(tmp_path):
    folder = tmp_path / "baseline"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"not loaded")
    with pytest.raises(ExportError, match=r"TF-IDF \+ logistic regression baseline export \(model.joblib\), not a transformer"):
        Predictor(folder)


def test_an_unknown_optimized_metric_fails_before_training(tmp_path):
    from claimstance.training.harness import prepare_run

    cfg = compose_train(["model=tiny"], tmp_path, values={"optimized_metric": "f2"})
    with pytest.raises(ConfigError, match=r"optimized_metric='f2' is not a metric; choose one of \['accuracy', 'macro_f1'"):
        prepare_run(cfg)


@pytest.mark.slow
def test_a_long_document_is_tagged_in_bounded_pieces(tiny_export):
    from claimstance.inference.documents import Document, tag_documents

    predictor = Predictor(tiny_export, backend="onnx")
    long = Document("long.txt", [{"sentence": i, "text": f"Line {i}."} for i in range(7)], [f"Line {i}." for i in range(7)])
    short = Document("short.txt", [{"sentence": 0, "text": "One."}], ["One."])
    pieces = list(tag_documents(predictor, [long, short], chunk_size=3))
    assert [(number, name, len(rows)) for number, name, rows in pieces] == [
        (0, "long.txt", 3),
        (0, "long.txt", 3),
        (0, "long.txt", 1),
        (1, "short.txt", 1),
    ]
    assert [row["sentence"] for _, name, rows in pieces if name == "long.txt" for row in rows] == list(range(7))


# --- streaming reader ------------------------------------------------------------------------


def test_read_inputs_yields_from_a_large_file_without_reading_it_whole(tmp_path):
    path = tmp_path / "big.txt"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(200_000):
            handle.write(f"Ministers said on day {i} that the plan would go ahead.\n")
    tracemalloc.start()
    first = list(islice(read_inputs(path), 5))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert first[4] == "Ministers said on day 4 that the plan would go ahead."
    assert peak < path.stat().st_size / 20


def test_read_inputs_gives_sentences_before_a_bad_line_further_down(tmp_path):
    path = tmp_path / "news.txt"
    path.write_bytes(b"".join(f"Sentence {i}.\n".encode() for i in range(10)) + b"bad \xff byte\n")
    sentences = read_inputs(path)
    assert list(islice(sentences, 10))[-1] == "Sentence 9."
    with pytest.raises(InputError, match=r"news.txt:11: invalid UTF-8"):
        next(sentences)
