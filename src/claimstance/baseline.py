"""The floor every run is compared with: TF-IDF n-grams + logistic regression (``model=tfidf_logreg``).

It goes through the same harness as the transformer: the same saved splits, the same scikit-learn report,
plots, ``metrics.json``, export folder and trackers, so a run folder of either kind reads the same.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

import joblib
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

from claimstance.atomic import staged_folder
from claimstance.dataset import label_table, prepare_dataset
from claimstance.metrics import evaluated_splits, score, write_report
from claimstance.tracking import apply_logger_env, finish_tracking, start_tracking
from claimstance.train import final_table, prepare_run, write_predictions_table

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"


def tfidf_logreg(
    ngram_max: int = 2,
    min_df: int = 1,
    sublinear_tf: bool = True,
    C: float = 10.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
) -> Pipeline:
    """TF-IDF word 1..``ngram_max``-grams into a multinomial logistic regression."""
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=sublinear_tf)),
            ("logreg", LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)),
        ]
    )


def baseline_card(cfg: DictConfig, metrics: Mapping) -> str:
    """``README.md`` for the export: what the model is, its scores and how to load it."""
    lines = [
        "# claimstance baseline: TF-IDF + logistic regression",
        "",
        "A scikit-learn floor for the transformer, trained on the same splits. Labels: "
        + ", ".join(f"`{label}` ({cfg.data.descriptions[label]})" for label in metrics["labels"]),
        "",
        f"Best validation macro-F1: {metrics['best_validation_macro_f1']:.3f}",
        "",
        "| split | macro-F1 | accuracy | sentences |",
        "|---|---|---|---|",
        *[
            f"| {name} | {metrics[name]['macro_f1']:.3f} | {metrics[name]['accuracy']:.3f} | {metrics[name]['size']} |"
            for name in metrics["evaluated"]
        ],
        "",
        "```python",
        "import joblib  # a pickle: load only files you trust",
        f'joblib.load("PATH/TO/THIS/FOLDER/{MODEL_FILE}").predict(["The ministry said it will double the grant."])',
        "```",
        "",
    ]
    return "\n".join(lines)


def train_baseline(cfg: DictConfig) -> dict:
    """Fit the pipeline on train, score validation/test/challenge, write the run folder and export; return the metrics."""
    run_dir, export_dir, _ = prepare_run(cfg)
    apply_logger_env(cfg)
    trackers = start_tracking(cfg, run_dir, main=True)
    labels = list(cfg.data.labels)
    dataset = prepare_dataset(cfg.data)

    pipeline = instantiate(cfg.model.pipeline)
    train_texts = list(dataset["train"]["text"])
    train_names = [labels[i] for i in dataset["train"]["label"]]  # fitted on names: predict() answers with them
    started = time.perf_counter()
    pipeline.fit(train_texts, train_names)
    runtime = time.perf_counter() - started

    def evaluate(split: str) -> tuple[dict, list[int]]:
        predicted = [labels.index(name) for name in pipeline.predict(list(dataset[split]["text"]))]
        report = score(
            list(dataset[split]["label"]), predicted, labels, list(dataset[split]["group"]), cfg.data.get("no_claim_label")
        )
        return report, predicted

    evaluated = {name: evaluate(name) for name in evaluated_splits(dataset)}
    metrics = {
        "labels": labels,
        "precision": "fp64",
        "world_size": 1,
        "train_runtime_s": round(runtime, 1),
        "train_samples_per_second": len(train_texts) / max(runtime, 1e-9),
        "train_loss": float(log_loss(train_names, pipeline.predict_proba(train_texts), labels=pipeline.classes_)),
        "data_counts": label_table(dataset),
        "data_groups": {name: len(set(part["group"])) for name, part in dataset.items()},  # documents, pairs or sentences
        "best_checkpoint": None,
        "best_validation_macro_f1": evaluate("validation")[0]["macro_f1"],
        "evaluated": list(evaluated),
        **{name: report for name, (report, _) in evaluated.items()},
    }
    for name, (report, predicted) in evaluated.items():
        log.info("\n%s", write_report(report, run_dir, name))
        write_predictions_table(dataset[name], predicted, labels, run_dir / f"{name}_predictions.jsonl")

    with staged_folder(export_dir) as staging:  # prepare_run refused an existing export unless overwrite=true
        joblib.dump(pipeline, staging / MODEL_FILE)
        (staging / "README.md").write_text(baseline_card(cfg, metrics))
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (staging / "training_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    metrics["export"] = {"dir": str(export_dir)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    finish_tracking(trackers, cfg, metrics, run_dir, export_dir)
    log.info("\n%s", final_table(metrics))
    log.info("Exported model: %s", export_dir / MODEL_FILE)
    return metrics
