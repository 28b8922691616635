"""Learning curve: the default recipe trained on growing stratified shares of the train split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from claimstance.errors import ConfigError, exits_cleanly
from claimstance.plotting import plt, save_figure
from claimstance.tables import text_table
from claimstance.training.harness import SPLIT_TITLES

log = logging.getLogger(__name__)


def curve_splits(points: list[dict]) -> list[str]:
    """Every split scored by any point, in first-seen order (test first); ``data.challenge=null`` simply has none."""
    return list(dict.fromkeys(split for p in points for split in p["macro_f1"]))


def check_fractions(fractions) -> list[float]:
    """``fractions`` must be a non-empty list of shares in (0, 1]: checked before the first of the training runs."""
    values = list(fractions) if isinstance(fractions, ListConfig | list | tuple) else []
    if not values or any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1 for v in values):
        raise ConfigError(f"fractions must be a non-empty list of numbers in (0, 1], e.g. [0.25,0.5,1.0]; got {fractions!r}")
    return [float(v) for v in values]


def curve_table(points: list[dict]) -> str:
    """Fraction, training sentences and macro-F1 per split; ``-`` where a point has no score for a split."""
    splits = curve_splits(points)
    rows = [[str(p["train_fraction"]), p["train_size"], *(p["macro_f1"].get(split, "-") for split in splits)] for p in points]
    return text_table(["fraction", "sentences", *splits], rows)


def plot_curve(points: list[dict], path: Path) -> None:
    """Macro-F1 of every evaluated split against the number of training sentences (test = held-out documents)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for split in curve_splits(points):
        scored = [p for p in points if split in p["macro_f1"]]  # a split some runs lack is drawn where it was scored
        ax.plot(
            [p["train_size"] for p in scored],
            [p["macro_f1"][split] for p in scored],
            marker="o",
            label=SPLIT_TITLES.get(split, split),
        )
    ax.set_xlabel("training sentences")
    ax.set_ylabel("macro-F1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Learning curve")
    save_figure(fig, path)


@exits_cleanly
def run(cfg: DictConfig) -> list[dict]:
    """``scripts/learning_curve.py``: one training run per fraction, then the table, JSON and PNG."""
    fractions = check_fractions(cfg.fractions)
    from claimstance.training.trainer import train  # torch loads only once the fractions are known to be good

    base = Path(cfg.paths.run_dir)
    points = []
    for fraction in fractions:
        run_cfg = OmegaConf.merge(cfg, {"data": {"train_fraction": fraction}})
        with open_dict(run_cfg):
            run_cfg.paths.run_dir = str(base / f"fraction-{fraction}")
        metrics = train(run_cfg)
        points.append(
            {
                "train_fraction": fraction,
                "train_size": metrics["data_counts"]["train"]["total"],
                "macro_f1": {split: round(metrics[split]["macro_f1"], 4) for split in metrics["evaluated"]},
                "test_macro_f1_ci95": metrics["test"]["macro_f1_ci95"],
            }
        )
    output = Path(cfg.curve_output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(points, indent=2) + "\n")
    plot_curve(points, output.with_suffix(".png"))
    log.info("\n%s\nSaved %s and %s", curve_table(points), output.with_suffix(".json"), output.with_suffix(".png"))
    return points
