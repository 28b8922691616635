"""The run harness every model kind goes through: one record, metrics in one place, calibration, outputs/latest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, compose_train, corpus_sample, write_jsonl
from sklearn.metrics import balanced_accuracy_score

from claimstance.evaluation import metrics
from claimstance.evaluation.calibration import (
    coverage_curve,
    fit_temperature,
    probabilities,
    reliability,
    threshold_for_precision,
)
from claimstance.training.harness import LATEST, RunRecord, point_latest
from claimstance.training.tracking import final_metrics


def small_run(tmp_path: Path, *overrides: str):
    write_jsonl(tmp_path / "ann" / "corpus.jsonl", corpus_sample(30))
    return compose_train(
        [
            *TINY,
            "export.onnx=false",
            "data=sentences",
            f"data.annotations={tmp_path}/ann",
            "data.challenge=null",
            f"data.output_dir={tmp_path}/processed",
            *overrides,
        ],
        tmp_path,
    )


@pytest.mark.slow
def test_a_metric_added_to_the_registry_reaches_every_reader(tmp_path, monkeypatch):
    """Adding a metric is one entry in ``metrics.METRICS`` plus ``optimized_metric`` in config: nothing else."""
    monkeypatch.setitem(metrics.METRICS, "balanced_accuracy", lambda y_true, y_pred, ids: balanced_accuracy_score(y_true, y_pred))
    from claimstance.training.trainer import train

    record = train(small_run(tmp_path, "optimized_metric=balanced_accuracy"))
    run_dir = tmp_path / "run"
    rows = [json.loads(line) for line in (run_dir / "test_predictions.jsonl").read_text().splitlines()]
    expected = balanced_accuracy_score([r["gold"] for r in rows], [r["predicted"] for r in rows])
    assert record["test"]["balanced_accuracy"] == pytest.approx(expected)
    assert record["optimized_metric"] == "balanced_accuracy"
    with (run_dir / "metrics_history.csv").open() as handle:
        logged = [float(row["value"]) for row in csv.DictReader(handle) if row["name"] == "eval_balanced_accuracy"]
    assert logged and record["best_validation"] == pytest.approx(max(logged))  # the Trainer chose the checkpoint by it
    assert final_metrics(record)["test/balanced_accuracy"] == pytest.approx(expected)
    assert json.loads((run_dir / "model" / "metrics.json").read_text())["test"]["balanced_accuracy"] == pytest.approx(expected)


@pytest.mark.slow
def test_baseline_and_transformer_write_the_same_record(tmp_path):
    from claimstance.training.trainer import train

    transformer = train(small_run(tmp_path / "a"))
    baseline = train(small_run(tmp_path / "b", "model=tfidf_logreg"))
    required = set(RunRecord.__required_keys__)
    assert required <= set(transformer) and required <= set(baseline)
    assert set(baseline) - set(transformer) == set()  # the baseline fills no key of its own
    assert {"world_size", "best_checkpoint"} <= set(transformer) - set(baseline)
    assert baseline["precision"] == "fp64 (scikit-learn)"
    export = tmp_path / "b" / "run" / "model"
    assert {p.name for p in export.iterdir()} >= {"model.joblib", "README.md", "metrics.json", "calibration.json"}
    card = (export / "README.md").read_text()
    assert "TF-IDF + logistic regression baseline" in card and "library_name: sklearn" in card and "joblib.load" in card
    transformer_card = (tmp_path / "a" / "run" / "model" / "README.md").read_text()
    assert "library_name: transformers" in transformer_card and "Predictor.from_pretrained" in transformer_card
    assert "baseline" not in transformer_card and "joblib" not in transformer_card  # each kind writes only its own lines
    latest = tmp_path / "b" / "outputs" / LATEST
    assert latest.resolve() == export.resolve()
    for record, run in ((transformer, tmp_path / "a" / "run"), (baseline, tmp_path / "b" / "run")):
        assert (run / "validation_reliability.png").stat().st_size > 0 and (run / "coverage_accuracy.png").stat().st_size > 0
        assert set(record["calibration"]["splits"]) == {"validation", *record["evaluated"]}
        for line in (run / "test_predictions.jsonl").read_text().splitlines():  # calibrated probabilities per sentence
            row = json.loads(line)
            assert list(row["probabilities"]) == record["labels"] and sum(row["probabilities"].values()) == pytest.approx(
                1, abs=1e-5
            )
            assert max(row["probabilities"], key=row["probabilities"].get) == row["predicted"]


@pytest.mark.parametrize("temperature", [0.5, 2.5])
def test_fitted_temperature_recovers_the_one_that_made_the_labels(temperature):
    """Labels drawn from softmax(logits / T) are best explained by T itself."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4000, 4))
    truth = np.array([rng.choice(4, p=p) for p in probabilities(logits, temperature)])
    assert fit_temperature(logits, truth) == pytest.approx(temperature, rel=0.1)


def test_reliability_ece_and_abstain_threshold_on_a_hand_made_case():
    # four answers at confidence 0.9 (3 right) and four at 0.6 (2 right): ECE = 0.5 * |0.75 - 0.9| + 0.5 * |0.5 - 0.6| = 0.125
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 4)
    truth = [0, 0, 0, 1, 0, 0, 1, 1]
    assert reliability(probs, truth, bins=10)["ece"] == pytest.approx(0.125)
    curve = coverage_curve(probs, truth)
    assert curve == {"threshold": [0.9, 0.6], "coverage": [0.5, 1.0], "accuracy": [0.75, 0.625]}  # ties go together
    assert threshold_for_precision(probs, truth, 0.75) == {"target": 0.75, "threshold": 0.9, "coverage": 0.5}
    assert threshold_for_precision(probs, truth, 0.95)["threshold"] is None


def test_latest_pointer_is_replaced_atomically(tmp_path):
    first, second = tmp_path / "runs" / "a" / "model", tmp_path / "runs" / "b" / "model"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    point_latest(tmp_path, first)
    link = point_latest(tmp_path, second)
    assert link.resolve() == second.resolve() and link.readlink() == Path("runs/b/model")  # relative: outputs/ can move
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "runs"]  # no staging link left behind
