"""The floor every run is compared with: TF-IDF n-grams + logistic regression (``model=tfidf_logreg``).

It goes through the same harness as the transformer: the same saved splits, the same scikit-learn report,
plots, ``metrics.json``, export folder and trackers, so a run folder of either kind reads the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import joblib
import numpy as np
from datasets import DatasetDict
from omegaconf import DictConfig
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

from claimstance.atomic import staged_folder
from claimstance.evaluation.metrics import evaluated_splits
from claimstance.inference.artifacts import BASELINE_FILE
from claimstance.inference.card import model_card
from claimstance.training.harness import RunPaths, RunRecord, evaluate, finish_run, new_record


def tfidf_logreg(
    labels: Sequence[str],
    ngram_max: int = 2,
    min_df: int = 1,
    sublinear_tf: bool = True,
    C: float = 10.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
) -> Pipeline:
    """TF-IDF word 1..``ngram_max``-grams into a multinomial logistic regression (``model=tfidf_logreg``).

    ``labels`` is taken like every model builder's; the pipeline learns the names from the training rows.
    """
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=sublinear_tf)),
            ("logreg", LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)),
        ]
    )


def fit_baseline(cfg: DictConfig, pipeline: Pipeline, dataset: DatasetDict, paths: RunPaths, trackers: list) -> RunRecord:
    """Fit the pipeline on train, hand its log-probabilities to the run harness, export ``model.joblib``."""
    labels = list(cfg.data.labels)
    train_texts = list(dataset["train"]["text"])
    train_names = [labels[i] for i in dataset["train"]["label"]]  # fitted on names: predict() answers with them
    started = time.perf_counter()
    pipeline.fit(train_texts, train_names)
    runtime = time.perf_counter() - started
    columns = [list(pipeline.classes_).index(label) for label in labels]  # pipeline order -> config order

    def log_probabilities(split: str) -> np.ndarray:
        return np.log(np.clip(pipeline.predict_proba(list(dataset[split]["text"]))[:, columns], 1e-12, None))

    logits = {name: log_probabilities(name) for name in ["validation", *evaluated_splits(dataset)]}
    evaluation = evaluate(cfg, dataset, logits, paths.run_dir)
    training = {
        "train_runtime_s": round(runtime, 1),
        "train_samples_per_second": len(train_texts) / max(runtime, 1e-9),
        "train_loss": float(log_loss(train_names, pipeline.predict_proba(train_texts), labels=pipeline.classes_)),
    }
    record = new_record(cfg, dataset, evaluation, evaluation.validation[cfg.optimized_metric], training)

    def export(files: dict[str, str]) -> dict:
        with staged_folder(paths.export_dir) as staging:  # prepare_run refused an existing export unless overwrite=true
            joblib.dump(pipeline, staging / BASELINE_FILE)
            (staging / "README.md").write_text(model_card(cfg, record, baseline=True))
            for name, text in files.items():
                (staging / name).write_text(text)
        return {}

    return finish_run(cfg, record, dataset, evaluation, paths.run_dir, export, trackers)
