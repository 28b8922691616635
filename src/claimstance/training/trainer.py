"""``train(cfg)``: one path for every model kind, from config to export; the whole job behind ``scripts/train.py``.

prepare the run -> dataset -> kind (``cfg.model``'s ``_target_``) -> fit -> logits of validation and every evaluated
split -> scores and calibration -> record -> export and ``metrics.json``. Tests and sweeps call it directly. It loads
no torch itself: only the transformer kind does.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from claimstance.evaluation.metrics import evaluated_splits
from claimstance.training.harness import (
    RunRecord,
    finish_run,
    is_main_process,
    label_names,
    load_dataset_once,
    new_record,
    prepare_run,
    score_splits,
)
from claimstance.training.kinds import ModelKind
from claimstance.training.tracking import apply_logger_env, start_tracking


def train(cfg: DictConfig) -> RunRecord:
    """Build the dataset, fit the configured model kind, score, calibrate and export; return the run record.

    The labels are the dataset's (inferred from the data or listed in ``data.labels``). Every rank of a
    distributed run fits and predicts; only the main one writes the reports, the export and ``metrics.json``.
    """
    paths = prepare_run(cfg)
    apply_logger_env(cfg)
    main = is_main_process()
    trackers = start_tracking(cfg, paths.run_dir, main=main)
    dataset = load_dataset_once(cfg)
    kind: ModelKind = instantiate(cfg.model, labels=label_names(dataset), _convert_="all")
    training = kind.fit(dataset, cfg, paths.run_dir)
    logits = {name: kind.logits(dataset[name]) for name in ["validation", *evaluated_splits(dataset)]}
    evaluation = score_splits(cfg, dataset, logits, paths.run_dir)
    record = new_record(cfg, dataset, evaluation, training)
    if not main:
        return record
    return finish_run(cfg, record, dataset, evaluation, paths.run_dir, kind, trackers)
