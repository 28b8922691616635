"""One run harness for every model kind: the run folder, the dataset, the scores, ``metrics.json`` and the export.

A model kind (:mod:`claimstance.training.kinds`) only fits and hands over logits; everything a finished run
leaves behind is written here, the same way for every kind, so a run folder of either kind reads the same and
every reader of ``metrics.json`` sees one record. Nothing here loads torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from datasets import Dataset, DatasetDict
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from claimstance.config import check_config
from claimstance.data.dataset import label_table, prepare_dataset
from claimstance.errors import ConfigError
from claimstance.evaluation.calibration import (
    calibration_report,
    coverage_at,
    coverage_curve,
    fit_temperature,
    plot_coverage,
    plot_reliability,
    probabilities,
    threshold_for_precision,
)
from claimstance.evaluation.metrics import HEADLINE_METRIC, check_metric, evaluated_splits, scalar_scores, score, write_report
from claimstance.inference.artifacts import CALIBRATION_FILE, METRICS_FILE, refuse_existing_export
from claimstance.inference.card import model_card
from claimstance.tables import text_table
from claimstance.training.kinds import ModelKind, kind_file
from claimstance.training.tracking import finish_tracking, resolved

log = logging.getLogger(__name__)

LATEST = "latest"  # outputs/latest: a symlink to the export of the last finished run
SPLIT_TITLES = {"test": "test (held out)", "challenge": "challenge (written apart)"}


class _Required(TypedDict):
    labels: list[str]
    optimized_metric: str  # the validation metric that chose the checkpoint (config: optimized_metric)
    best_validation: float  # its value on the validation split
    train_runtime_s: float
    train_samples_per_second: float
    train_loss: float
    data_counts: dict[str, dict[str, int]]  # split -> label -> sentences (and "total")
    data_groups: dict[str, int]  # split -> documents, pairs or sentences
    evaluated: list[str]  # the split reports below, held-out documents first
    calibration: dict  # temperature, ECE before/after per split, the validation abstain threshold


class RunRecord(_Required, total=False):
    """``metrics.json``: what every run writes and every reader (trackers, compare, curve, model card) uses.

    Besides these keys, each name in ``evaluated`` maps to its split report (:func:`claimstance.evaluation.metrics.score`).
    A model kind's ``fit`` adds its own figures (``precision``; the transformer's ``world_size`` and
    ``best_checkpoint``); ``export`` is added once the export folder is in place.
    """

    precision: str
    world_size: int
    best_checkpoint: str | None
    export: dict


def reports(record: Mapping) -> dict[str, dict]:
    """The record's split reports by name, in evaluation order."""
    return {name: record[name] for name in record["evaluated"]}


@dataclass(frozen=True)
class RunPaths:
    run_dir: Path
    export_dir: Path


def prepare_run(cfg: DictConfig) -> RunPaths:
    """Check the config, refuse to clobber an export and check there is a checkpoint to resume from, before any work."""
    check_config(cfg)
    check_metric(cfg.get("optimized_metric"), "optimized_metric")
    run_dir = Path(cfg.paths.run_dir)
    export_dir = Path(cfg.export.dir)
    refuse_existing_export(export_dir, bool(cfg.overwrite))
    if cfg.get("resume_from"):
        checkpoint = last_checkpoint(run_dir)
        if checkpoint is None:
            raise ConfigError(f"resume_from={cfg.resume_from}: no checkpoint-* folder under {run_dir / 'checkpoints'}")
        log.info("Resuming from %s", checkpoint)
    return RunPaths(run_dir, export_dir)


def last_checkpoint(run_dir: Path) -> str | None:
    """The run's newest ``checkpoints/checkpoint-<step>`` folder (as the HF Trainer names them), or None."""
    steps = {
        int(match.group(1)): path
        for path in (run_dir / "checkpoints").glob("checkpoint-*")
        if path.is_dir() and (match := re.fullmatch(r"checkpoint-(\d+)", path.name))
    }
    return str(steps[max(steps)]) if steps else None


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (torchrun and accelerate set ``RANK``), or a single process."""
    return int(os.environ.get("RANK", "0")) == 0


def load_dataset_once(cfg: DictConfig) -> DatasetDict:
    """``prepare_dataset``, one process at a time: the first builds and saves, the others (ranks, runs) reuse it."""
    output_dir = cfg.data.get("output_dir")
    lock = FileLock(f"{output_dir}.lock") if output_dir else nullcontext()
    if output_dir:
        Path(output_dir).parent.mkdir(parents=True, exist_ok=True)
    with lock:
        return prepare_dataset(cfg.data)


def label_names(dataset: DatasetDict) -> list[str]:
    """The label names in id order, as the dataset carries them (inferred from the data or listed in data.labels)."""
    return list(dataset["train"].features["label"].names)


@dataclass
class Evaluation:
    """A fitted model's outputs on every split the run scores, and the calibration fitted on validation."""

    reports: dict[str, dict]
    predicted: dict[str, list[int]]
    probabilities: dict[str, np.ndarray]  # calibrated (temperature-scaled), one row per sentence
    calibration: dict
    validation: dict[str, float]  # every metric of METRICS on the validation split, for the optimized_metric


def score_splits(cfg: DictConfig, dataset: DatasetDict, logits: Mapping[str, np.ndarray], run_dir: Path) -> Evaluation:
    """Score each split from its logits, fit the temperature on validation, write the calibration plots.

    ``logits`` holds ``validation`` and every evaluated split (any scores whose softmax is the model's
    probabilities: a scikit-learn model passes log-probabilities).
    """
    labels = label_names(dataset)
    no_claim = cfg.data.get("no_claim_label")
    names = evaluated_splits(dataset)
    predicted = {name: np.asarray(logits[name]).argmax(-1).tolist() for name in names}
    split_reports = {
        name: score(list(dataset[name]["label"]), predicted[name], labels, list(dataset[name]["group"]), no_claim)
        for name in names
    }
    gold_validation = list(dataset["validation"]["label"])
    validation = scalar_scores(gold_validation, np.asarray(logits["validation"]).argmax(-1).tolist(), list(range(len(labels))))
    temperature = fit_temperature(logits["validation"], gold_validation)
    target = float(cfg.calibration.target_precision)
    threshold = threshold_for_precision(probabilities(logits["validation"], temperature), gold_validation, target)
    run_dir.mkdir(parents=True, exist_ok=True)
    curves = {}
    per_split = {}
    for name in ["validation", *names]:
        gold = list(dataset[name]["label"])
        per_split[name] = calibration_report(logits[name], gold, temperature)
        per_split[name]["coverage"] = coverage_at(probabilities(logits[name], temperature), gold)
        plot_reliability(logits[name], gold, temperature, run_dir / f"{name}_reliability.png", name)
        curves[name] = coverage_curve(probabilities(logits[name], temperature), gold)
    plot_coverage(curves, threshold, run_dir / "coverage_accuracy.png")
    calibration = {
        "temperature": round(temperature, 4),
        "fitted_on": "validation",
        "min_confidence": threshold,
        "splits": per_split,
    }
    calibrated = {name: probabilities(logits[name], temperature) for name in names}
    return Evaluation(split_reports, predicted, calibrated, calibration, validation)


def new_record(cfg: DictConfig, dataset: DatasetDict, evaluation: Evaluation, training: Mapping) -> RunRecord:
    """The run's record from its evaluation and a kind's training figures (the ``train_*`` keys and any extras).

    ``best_validation`` is the kind's own (the score that chose its checkpoint) or else the fitted model's.
    """
    training = dict(training)
    best_validation = training.pop("best_validation", None)
    if best_validation is None:
        best_validation = evaluation.validation[cfg.optimized_metric]
    return RunRecord(
        labels=label_names(dataset),
        optimized_metric=str(cfg.optimized_metric),
        best_validation=float(best_validation),
        data_counts=label_table(dataset),
        data_groups={name: len(set(part["group"])) for name, part in dataset.items()},
        calibration=evaluation.calibration,
        evaluated=list(evaluation.reports),
        **training,
        **evaluation.reports,
    )


def write_predictions_table(
    split: Dataset, predicted: list[int], probabilities: np.ndarray, labels: list[str], path: Path
) -> None:
    """Every evaluated sentence with its gold and predicted label and calibrated probabilities, for error analysis."""
    pairs = "text_pair" in split.column_names
    with path.open("w", encoding="utf-8") as handle:
        for row, guess, row_probabilities in zip(split, predicted, probabilities, strict=True):
            record = {
                "id": row["id"],
                "group": row["group"],
                "domain": row.get("domain"),
                "text": row["text"],
                **({"text_pair": row["text_pair"]} if pairs else {}),
                "gold": labels[row["label"]],
                "predicted": labels[guess],
                "probabilities": {label: round(float(p), 6) for label, p in zip(labels, row_probabilities, strict=True)},
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def point_latest(output_dir: Path, export_dir: Path) -> Path:
    """Make ``output_dir/latest`` a symlink to ``export_dir``, atomically (a new link renamed over the old one)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    link = output_dir / LATEST
    target = os.path.relpath(export_dir.resolve(), output_dir.resolve())
    staging = output_dir / f".{LATEST}-{os.getpid()}"
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    staging.symlink_to(target, target_is_directory=True)
    os.replace(staging, link)
    return link


def finish_run(
    cfg: DictConfig,
    record: RunRecord,
    dataset: DatasetDict,
    evaluation: Evaluation,
    run_dir: Path,
    kind: ModelKind,
    trackers: list,
) -> RunRecord:
    """Write reports and prediction tables, save the kind's export with the card/metrics/config files, then metrics.json.

    ``metrics.json`` in the run folder comes last: its presence means the run finished.
    """
    labels = record["labels"]
    for name, report in reports(record).items():
        log.info("\n%s", write_report(report, run_dir, name))
        table = run_dir / f"{name}_predictions.jsonl"
        write_predictions_table(dataset[name], evaluation.predicted[name], evaluation.probabilities[name], labels, table)
    log.info("\n%s", calibration_table(record["calibration"]))
    export_dir = Path(cfg.export.dir)
    files = {
        "README.md": model_card(cfg, record, kind.card()),
        METRICS_FILE: json.dumps(record, indent=2),
        CALIBRATION_FILE: json.dumps(record["calibration"], indent=2),
        "training_config.yaml": OmegaConf.to_yaml(resolved(cfg)),
        **kind_file(kind),
    }
    checks = kind.save(export_dir, files)
    record["export"] = {"dir": str(export_dir), **checks}
    (run_dir / METRICS_FILE).write_text(json.dumps(record, indent=2))
    finish_tracking(trackers, cfg, record, run_dir, export_dir)
    log.info("\n%s", final_table(record))
    if cfg.export.get("latest", True):
        log.info("Exported model: %s (also %s)", export_dir, point_latest(Path(cfg.paths.output_dir), export_dir))
    else:
        log.info("Exported model: %s", export_dir)
    return record


def calibration_table(calibration: Mapping) -> str:
    """ECE per split before and after temperature scaling, and the validation abstain threshold."""
    rows = [[name, row["ece_before"], row["ece_after"]] for name, row in calibration["splits"].items()]
    lines = [f"calibration: temperature {calibration['temperature']:.3f} (fitted on validation)"]
    lines.append(text_table(["split", "ECE before", "ECE after"], rows))
    threshold = calibration["min_confidence"]
    if threshold["threshold"] is None:
        lines.append(f"no min_confidence reaches {threshold['target']:.0%} precision on validation")
    else:
        lines.append(
            f"min_confidence={threshold['threshold']:.3f} reaches {threshold['target']:.0%} precision on validation, "
            f"answering {threshold['coverage']:.0%} of its sentences (predict.py min_confidence=auto)"
        )
    headline = next((name for name in calibration["splits"] if name != "validation"), "validation")
    rows = [
        [row["min_confidence"], f"{row['coverage']:.1%}", "-" if row["precision"] is None else f"{row['precision']:.1%}"]
        for row in calibration["splits"][headline].get("coverage", [])
    ]
    if rows:
        lines.append(f"{headline}: what each min_confidence answers, and how precisely")
        lines.append(text_table(["min_confidence", "answered", "precision"], rows))
    return "\n".join(lines)


def final_table(record: Mapping) -> str:
    """The closing summary: macro-F1 with its 95% interval, claim-label F1 and accuracy per split; the headline's per-label F1."""
    rows = []
    for name, report in reports(record).items():
        low, high = report[f"{HEADLINE_METRIC}_ci95"]
        rows.append(
            [
                SPLIT_TITLES.get(name, name),
                report[HEADLINE_METRIC],
                f"{low:.3f}-{high:.3f}",
                report.get("claim_macro_f1", "-"),
                report["accuracy"],
                report["pairs"]["consistency"] if "pairs" in report else "-",
                report["size"],
            ]
        )
    table = text_table(["split", "macro-F1", "95% CI", "claims F1", "accuracy", "pair consistency", "size"], rows)
    first = record["evaluated"][0]
    per_label = ", ".join(f"{label} {values['f1-score']:.3f}" for label, values in record[first]["per_class"].items())
    return "\n".join(
        [
            table,
            f"{first} per-label F1: {per_label}",
            f"best validation {record['optimized_metric']}: {record['best_validation']:.3f}; "
            f"training: {record['train_runtime_s']} s, {record['train_samples_per_second']:.1f} samples/s, "
            f"{record.get('precision', '-')}",
        ]
    )
