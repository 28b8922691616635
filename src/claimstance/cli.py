"""Console commands installed with the package: the same Hydra apps as ``scripts/*.py``, on PATH.

``claimstance-train model=tiny`` is ``python scripts/train.py model=tiny``; each command imports its
stage only when run, so ``claimstance-predict`` starts as fast as the script does.
"""

from __future__ import annotations

from collections.abc import Callable

import hydra

from claimstance.config import project_root


def _launch(config_name: str, entry: Callable) -> None:
    """Run ``entry(cfg)`` as a Hydra app on ``configs/<config_name>.yaml`` of this checkout."""
    app = hydra.main(version_base="1.3", config_path=str(project_root() / "configs"), config_name=config_name)(entry)
    app()


def train() -> None:
    from claimstance.train import run

    _launch("train", run)


def predict() -> None:
    from claimstance.predict import run

    _launch("predict", run)


def evaluate() -> None:
    from claimstance.metrics import run

    _launch("evaluate", run)


def build_dataset() -> None:
    from claimstance.dataset import run

    _launch("build_dataset", run)
