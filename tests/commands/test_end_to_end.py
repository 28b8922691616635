"""scripts/train.py as a user runs it (tiny model), then the export through plain transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, run_script

from claimstance.inference.predictor import Predictor

pytestmark = pytest.mark.slow  # every test reads the export that the tiny_export fixture trains through scripts/train.py


def test_export_is_complete_and_self_describing(tiny_export):
    names = {p.name for p in tiny_export.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "README.md",
        "metrics.json",
        "training_config.yaml",
        "model.onnx",
    } <= names
    config = json.loads((tiny_export / "config.json").read_text())
    assert config["id2label"] == {"0": "commitment", "1": "caution", "2": "request", "3": "none"}
    card = (tiny_export / "README.md").read_text()
    assert "| commitment |" in card and "macro-F1" in card and "pipeline(" in card
    assert "Base model: none: a randomly initialised `tiny_bert`" in card
    metrics = json.loads((tiny_export / "metrics.json").read_text())
    assert set(metrics["test"]["per_class"]) == {"commitment", "caution", "request", "none"}
    assert metrics["challenge"]["size"] == 280  # the repo's challenge set, all four labels
    low, high = metrics["test"]["macro_f1_ci95"]
    assert low <= metrics["test"]["macro_f1"] <= high and low < high
    checks = json.loads((tiny_export / "export_checks.json").read_text())
    assert checks["onnx"]["label_agreement"] == 1.0 and checks["onnx"]["max_prob_diff"] < 1e-4


def test_run_folder_holds_reports_and_plots(tiny_export):
    run = tiny_export.parent
    for name in (
        "metrics.json",
        "test_report.txt",
        "test_confusion_matrix.png",
        "challenge_report.txt",
        "training_curves.png",
        "metrics_history.csv",
        "train.log",
        ".hydra/config.yaml",
        "test_predictions.jsonl",
    ):
        assert (run / name).is_file(), name
    assert "macro-F1" in (run / "train.log").read_text()


def test_prediction_files_line_up_with_their_sentences(tiny_export):
    from datasets import load_from_disk

    run = tiny_export.parent
    metrics = json.loads((run / "metrics.json").read_text())
    dataset = load_from_disk(str(run.parent / "processed"))
    names = dataset["test"].features["label"].names
    gold_by_id = {row["id"]: names[row["label"]] for row in dataset["test"]}
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == list(dataset["test"]["id"])
    assert all(row["gold"] == gold_by_id[row["id"]] for row in rows)
    accuracy = sum(row["gold"] == row["predicted"] for row in rows) / len(rows)
    assert accuracy == metrics["test"]["accuracy"]


def test_plain_transformers_pipeline_answers_with_claim_names(tiny_export):
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tiny_export))
    sentence = "The ministry said it will double the grant for rural clinics next year."
    answer = classify(sentence)
    assert answer[0]["label"] in {"commitment", "caution", "request", "none"}
    # the pipeline's softmax over the raw logits: the export's own (uncalibrated) probabilities, top label named
    ours = Predictor(tiny_export, backend="torch", calibrated=False)
    probabilities = ours.predict_proba([sentence])[0]
    assert answer[0]["label"] == ours.labels[int(np.argmax(probabilities))]
    assert answer[0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_predict_script_writes_jsonl_for_text_and_files(tiny_export, tmp_path):
    result = run_script(
        "predict.py", f"model_dir={tiny_export}", "text=The union demanded talks.", f"hydra.run.dir={tmp_path}/p1"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["label"] in record["probabilities"] and abs(sum(record["probabilities"].values()) - 1) < 1e-4

    article = ROOT / "seeds" / "000_ccd737c3ae17ccd4.txt"
    out = tmp_path / "article.jsonl"
    result = run_script(
        "predict.py",
        f"model_dir={tiny_export}",
        f"input={article}",
        "input_format=article",
        f"output={out}",
        f"hydra.run.dir={tmp_path}/p2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) > 20 and all(row["label"] in {"commitment", "caution", "request", "none"} for row in rows)


def test_evaluate_script_reproduces_the_training_report(tiny_export, tmp_path):
    run = tiny_export.parent
    cfg = (run / ".hydra" / "config.yaml").read_text()
    processed = next(
        line.split(": ", 1)[1] for line in cfg.splitlines() if line.strip().startswith("output_dir:") and "processed" in line
    )
    result = run_script(
        "evaluate.py",
        f"model_dir={tiny_export}",
        f"data.output_dir={processed}",
        "data=sentences",
        f"data.annotations={run.parent}/ann",
        "data.challenge=null",
        f"hydra.run.dir={tmp_path}/ev",
        "backend=torch",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "ev" / "test_report.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert report["confusion_matrix"] == trained["confusion_matrix"]
