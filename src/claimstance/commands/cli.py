"""Console commands: each is a Hydra app on ``claimstance/configs/<name>.yaml`` running ``commands.<name>.run``.

``claimstance-train model=tiny`` is ``python scripts/train.py model=tiny``. The configs ship inside the
package (``pkg://claimstance.configs``), so the commands work after ``pip install`` outside a checkout.
Each command imports its stage only when run, so ``claimstance-predict`` starts as fast as the script does.
"""

from __future__ import annotations

import importlib

import hydra

import claimstance.config  # noqa: F401  (registers the config resolvers)

CONFIGS = "pkg://claimstance.configs"


def launch(name: str) -> None:
    """Run ``claimstance.commands.<name>.run`` as a Hydra app on the config of the same name."""
    entry = importlib.import_module(f"claimstance.commands.{name}").run
    hydra.main(version_base="1.3", config_path=CONFIGS, config_name=name)(entry)()


def train() -> None:
    launch("train")


def predict() -> None:
    launch("predict")


def evaluate() -> None:
    launch("evaluate")


def build_dataset() -> None:
    launch("build_dataset")


def benchmark() -> None:
    launch("benchmark")


def agreement() -> None:
    launch("agreement")


def compare_runs() -> None:
    launch("compare_runs")


def compare_splitters() -> None:
    launch("compare_splitters")


def cross_field() -> None:
    launch("cross_field")


def datasheet() -> None:
    launch("datasheet")


def learning_curve() -> None:
    launch("learning_curve")


def annotate() -> None:
    launch("annotate")


def select_next() -> None:
    launch("select_next")


def audit() -> None:
    launch("audit")


def serve() -> None:
    launch("serve")
