"""``evaluate``: score an exported model of any kind on a saved split or an annotation file, with the training report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from datasets import Dataset

from claimstance.errors import ConfigError, exits_cleanly
from claimstance.evaluation.calibration import calibration_report, plot_reliability
from claimstance.evaluation.metrics import score, write_report
from claimstance.inference.artifacts import is_transformer_export, read_temperature

log = logging.getLogger(__name__)


def _gold_rows(cfg) -> tuple[Dataset, list[str]]:
    """The sentences to score (``text``, ``text_pair`` when paired, ``group``) and their gold label names.

    From ``annotations=`` (any JSONL annotation file or folder) or a split of the saved dataset.
    """
    if cfg.annotations:
        from claimstance.data.annotations import known_labels, load_annotations

        rows = load_annotations(cfg.annotations, known_labels(cfg.data)).rows
        columns = {"text": [r.text for r in rows], "group": [r.group(cfg.data.group_by) for r in rows]}
        if any(r.text_pair is not None for r in rows):
            columns["text_pair"] = [r.text_pair for r in rows]
        return Dataset.from_dict(columns), [r.label for r in rows]
    from claimstance.data.dataset import prepare_dataset

    dataset = prepare_dataset(cfg.data)
    if cfg.split not in dataset:
        raise ConfigError(f"split={cfg.split} is not in the dataset; choose one of {sorted(dataset)}")
    part = dataset[cfg.split]
    names = part.features["label"].names
    return part, [names[i] for i in part["label"]]


def scorer(cfg) -> tuple[list[str], float, Callable[[Dataset], np.ndarray]]:
    """The export's labels, temperature and logits function.

    A transformer export goes through :class:`Predictor` (ONNX or torch, as ``backend=`` says); any other kind
    (a TF-IDF ``model.joblib``) is loaded back by its model-kind class.
    """
    model_dir = Path(cfg.model_dir)
    if is_transformer_export(model_dir):
        from claimstance.inference.predictor import Predictor

        predictor = Predictor(model_dir, backend=cfg.backend, batch_size=cfg.batch_size)

        def predictor_logits(split: Dataset) -> np.ndarray:
            if "text_pair" not in split.column_names:
                return predictor.predict_logits(list(split["text"]))
            pairs = zip(split["text"], split["text_pair"], strict=True)
            return predictor.predict_logits([{"text": text, "text_pair": pair} for text, pair in pairs])

        return predictor.labels, predictor.temperature, predictor_logits
    from claimstance.training.kinds import load_kind

    kind = load_kind(model_dir)
    return kind.labels, read_temperature(model_dir), kind.logits


def kept(gold: Sequence[str], labels: Sequence[str]) -> list[int]:
    """Rows whose gold label the model knows (the others are counted and left out)."""
    keep = [i for i, label in enumerate(gold) if label in labels]
    if len(keep) < len(gold):
        log.info("Left out %d sentence(s) whose label the model does not know", len(gold) - len(keep))
    if not keep:
        raise ConfigError(f"none of the gold labels are among the model's labels {list(labels)}")
    return keep


@exits_cleanly
def run(cfg) -> dict:
    """``scripts/evaluate.py``: score an exported model with the same report as training."""
    labels, temperature, logits_of = scorer(cfg)
    rows, gold = _gold_rows(cfg)
    keep = kept(gold, labels)
    rows = rows.select(keep)
    logits = logits_of(rows)
    y_true = [labels.index(gold[i]) for i in keep]
    report = score(y_true, logits.argmax(-1).tolist(), labels, list(rows["group"]), no_claim_label=cfg.data.get("no_claim_label"))
    report["calibration"] = calibration_report(logits, y_true, temperature)
    name = "annotations" if cfg.annotations else cfg.split
    folder = Path(cfg.paths.run_dir)
    log.info("\n%s", write_report(report, folder, name))
    plot_reliability(logits, y_true, temperature, folder / f"{name}_reliability.png", name)
    calibration = report["calibration"]
    log.info(
        "ECE %.3f before, %.3f after temperature scaling (T=%.3f); reports in %s",
        calibration["ece_before"],
        calibration["ece_after"],
        temperature,
        folder,
    )
    return report
