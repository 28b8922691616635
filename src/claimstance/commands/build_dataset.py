"""``build_dataset``: build (or reuse) the validated ``DatasetDict`` and print its label table."""

from __future__ import annotations

import logging

from claimstance.data.dataset import prepare_dataset
from claimstance.errors import exits_cleanly

log = logging.getLogger(__name__)


@exits_cleanly
def run(cfg) -> None:
    """``scripts/build_dataset.py``: build (or reuse) the dataset and print its table."""
    prepare_dataset(cfg.data, rebuild=bool(cfg.rebuild))
