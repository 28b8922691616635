"""``evaluate``: score an exported model on a saved split or an annotation file, with the same report as training."""

from __future__ import annotations

import logging
from pathlib import Path

from claimstance.errors import ConfigError, exits_cleanly
from claimstance.evaluation.calibration import calibration_report, plot_reliability
from claimstance.evaluation.metrics import score, write_report

log = logging.getLogger(__name__)


def _gold_rows(cfg) -> tuple[list[str], list[str], list[str]]:
    """Texts, gold label names and groups (document, pair or sentence id) from ``annotations=`` or a saved split."""
    if cfg.annotations:
        from claimstance.data.annotations import load_annotations

        rows = load_annotations(cfg.annotations, list(cfg.data.known_labels)).rows
        return [r.text for r in rows], [r.label for r in rows], [r.group(cfg.data.group_by) for r in rows]
    from claimstance.data.dataset import prepare_dataset

    dataset = prepare_dataset(cfg.data)
    if cfg.split not in dataset:
        raise ConfigError(f"split={cfg.split} is not in the dataset; choose one of {sorted(dataset)}")
    part = dataset[cfg.split]
    names = part.features["label"].names
    return list(part["text"]), [names[i] for i in part["label"]], list(part["group"])


@exits_cleanly
def run(cfg) -> dict:
    """``scripts/evaluate.py``: score an exported model with the same report as training."""
    from claimstance.inference.predictor import Predictor

    predictor = Predictor(cfg.model_dir, backend=cfg.backend, batch_size=cfg.batch_size)
    texts, gold, groups = _gold_rows(cfg)
    keep = [i for i, label in enumerate(gold) if label in predictor.labels]
    if len(keep) < len(gold):
        log.info("Left out %d sentence(s) whose label the model does not know", len(gold) - len(keep))
    if not keep:
        raise ConfigError(f"none of the gold labels are among the model's labels {predictor.labels}")
    logits = predictor.predict_logits([texts[i] for i in keep])
    y_true = [predictor.labels.index(gold[i]) for i in keep]
    report = score(
        y_true, logits.argmax(-1).tolist(), predictor.labels, [groups[i] for i in keep], no_claim_label=cfg.data.no_claim_label
    )
    report["calibration"] = calibration_report(logits, y_true, predictor.temperature)
    name = "annotations" if cfg.annotations else cfg.split
    folder = Path(cfg.paths.run_dir)
    log.info("\n%s", write_report(report, folder, name))
    plot_reliability(logits, y_true, predictor.temperature, folder / f"{name}_reliability.png", name)
    calibration = report["calibration"]
    log.info(
        "ECE %.3f before, %.3f after temperature scaling (T=%.3f); reports in %s",
        calibration["ece_before"],
        calibration["ece_after"],
        predictor.temperature,
        folder,
    )
    return report
