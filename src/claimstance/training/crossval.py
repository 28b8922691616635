"""Out-of-fold probabilities: every labelled row predicted by a model that never saw it (k-fold, grouped when it can be).

What a label-error search needs (cleanlab's ``find_label_issues`` assumes out-of-sample probabilities): a model
scoring its own training rows is confident about their labels, wrong ones included. Each fold's model comes
from the model config, like a training run's, as a model kind (:mod:`claimstance.training.kinds`): ``fit`` on
``dataset["train"]`` (with ``dataset["validation"]`` carved from the training folds, never the held-out one),
``logits`` on the held-out fold, so ``model=tfidf_logreg`` and the transformers cross-validate alike.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from claimstance.errors import ConfigError, UserError
from claimstance.inference.predictor import softmax
from claimstance.training.kinds import ModelKind

log = logging.getLogger(__name__)


def kind_factory(cfg: DictConfig, labels: Sequence[str]) -> Callable[[], ModelKind]:
    """A function building a fresh, unfitted model kind of ``cfg.model`` for each fold."""

    def make() -> ModelKind:
        built = instantiate(cfg.model, labels=list(labels))
        if not (callable(getattr(built, "fit", None)) and callable(getattr(built, "logits", None))):
            raise ConfigError(
                f"model: {cfg.model.get('_target_')} built a {type(built).__name__}, which is not a model kind "
                "(fit(dataset, cfg, run_dir) and logits(split), see training/kinds.py)"
            )
        return built

    return make


@dataclass
class OutOfFold:
    """Probabilities in row order (each from the fold that held the row out) and each row's fold number."""

    probabilities: np.ndarray
    fold: np.ndarray
    grouped: bool


def is_grouped(groups: Sequence[str] | None) -> bool:
    """Groups matter only when some rows share one (sentence-level ids make every group a singleton)."""
    return groups is not None and len(set(groups)) < len(groups)


def _splitter(k: int, grouped: bool, seed: int):
    if grouped:
        return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)


def fold_indices(
    labels: Sequence[int], groups: Sequence[str] | None, k: int, seed: int, names: Sequence[str] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, held-out) index pairs, stratified by label, whole groups per fold when rows share groups."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {k!r}")
    counts = Counter(labels)
    rare = sorted((label, n) for label, n in counts.items() if n < k)
    if rare:
        shown = ", ".join(f"'{names[label] if names else label}' has {n}" for label, n in rare)
        raise UserError(f"too few rows for {k} folds: {shown}; every label needs at least {k} (lower folds= or drop it)")
    grouped = is_grouped(groups)
    if grouped and len(set(groups)) < k:
        raise UserError(f"only {len(set(groups))} groups for {k} folds; lower folds= or give finer groups")
    y = np.asarray(labels)
    return list(_splitter(k, grouped, seed).split(np.zeros(len(y)), y, groups if grouped else None))


def _carve_validation(
    train: np.ndarray, labels: np.ndarray, groups: Sequence[str] | None, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) out of one fold's training rows, stratified and grouped like the folds."""
    sub_groups = [groups[i] for i in train] if groups is not None else None
    grouped = is_grouped(sub_groups)
    # about ``share`` held back; fewer splits (a larger share) when a label is too rare for that many
    splits = max(2, min(round(1 / share), min(Counter(labels[train].tolist()).values())))
    if grouped:
        splits = min(splits, len(set(sub_groups)))
    with warnings.catch_warnings():  # a rare label may miss the validation part: harmless for fitting
        warnings.simplefilter("ignore", UserWarning)
        fit, validation = next(
            _splitter(splits, grouped, seed).split(np.zeros(len(train)), labels[train], sub_groups if grouped else None)
        )
    return train[fit], train[validation]


def out_of_fold(
    rows: Dataset,
    make_kind: Callable[[], ModelKind],
    cfg: DictConfig,
    folds: int = 5,
    seed: int = 0,
    validation_share: float = 0.1,
    group_column: str = "group",
) -> OutOfFold:
    """Fit one model per fold on the other folds and predict the held-out rows; rows need ``text`` and ``label``.

    Each fold's model trains in its own temporary folder (checkpoints of a transformer), removed afterwards.
    """
    if not 0 < validation_share < 0.5:
        raise ConfigError(f"validation_share must be in (0, 0.5), got {validation_share!r}")
    labels = np.asarray(rows["label"])
    groups = list(rows[group_column]) if group_column in rows.column_names else None
    names = rows.features["label"].names if hasattr(rows.features["label"], "names") else None
    n_labels = len(names) if names else int(labels.max()) + 1
    probabilities = np.zeros((len(rows), n_labels))
    fold_of = np.full(len(rows), -1)
    for number, (train, held) in enumerate(fold_indices(labels.tolist(), groups, folds, seed, names)):
        fit, validation = _carve_validation(train, labels, groups, validation_share, seed)
        kind = make_kind()
        with tempfile.TemporaryDirectory(prefix=f"claimstance-fold{number}-") as work:
            kind.fit(DatasetDict({"train": rows.select(fit), "validation": rows.select(validation)}), cfg, Path(work))
            probabilities[held] = softmax(kind.logits(rows.select(held)))
        fold_of[held] = number
        log.info("Fold %d/%d: trained on %d rows, predicted %d held-out rows", number + 1, folds, len(fit), len(held))
    return OutOfFold(probabilities, fold_of, is_grouped(groups))
