"""``train``: fine-tune, evaluate and export; returns the validation score that sweeps optimise."""

from __future__ import annotations

from omegaconf import DictConfig

from claimstance.errors import exits_cleanly
from claimstance.training.trainer import train


@exits_cleanly
def run(cfg: DictConfig) -> float:
    """``scripts/train.py``: train, and return the best validation ``optimized_metric`` as the sweep objective."""
    return float(train(cfg)["best_validation"])
