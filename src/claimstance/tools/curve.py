"""Learning curve: the default recipe trained on growing stratified shares of the train split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402

from claimstance.config import exits_cleanly  # noqa: E402
from claimstance.train import SPLIT_TITLES, train  # noqa: E402

log = logging.getLogger(__name__)


def plot_curve(points: list[dict], path: Path) -> None:
    """Macro-F1 of every evaluated split against the number of training sentences (test = held-out documents)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [p["train_size"] for p in points]
    for split in points[0]["macro_f1"]:
        ax.plot(sizes, [p["macro_f1"][split] for p in points], marker="o", label=SPLIT_TITLES.get(split, split))
    ax.set_xlabel("training sentences")
    ax.set_ylabel("macro-F1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@exits_cleanly
def run(cfg: DictConfig) -> list[dict]:
    """``scripts/learning_curve.py``: one training run per fraction, then the table, JSON and PNG."""
    base = Path(cfg.paths.run_dir)
    points = []
    for fraction in cfg.fractions:
        run_cfg = OmegaConf.merge(cfg, {"data": {"train_fraction": float(fraction)}})
        with open_dict(run_cfg):
            run_cfg.paths.run_dir = str(base / f"fraction-{fraction}")
        metrics = train(run_cfg)
        points.append(
            {
                "train_fraction": float(fraction),
                "train_size": metrics["data_counts"]["train"]["total"],
                "macro_f1": {split: round(metrics[split]["macro_f1"], 4) for split in metrics["evaluated"]},
                "test_macro_f1_ci95": metrics["test"]["macro_f1_ci95"],
            }
        )
    output = Path(cfg.curve_output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(points, indent=2) + "\n")
    plot_curve(points, output.with_suffix(".png"))
    splits = list(points[0]["macro_f1"])
    rows = [f"{'fraction':>9}{'sentences':>11}" + "".join(f"{split:>16}" for split in splits)]
    rows += [
        f"{p['train_fraction']:>9}{p['train_size']:>11}" + "".join(f"{p['macro_f1'][split]:>16.3f}" for split in splits)
        for p in points
    ]
    log.info("\n%s\nSaved %s and %s", "\n".join(rows), output.with_suffix(".json"), output.with_suffix(".png"))
    return points
