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
from claimstance.train import train  # noqa: E402

log = logging.getLogger(__name__)


def plot_curve(points: list[dict], path: Path) -> None:
    """Test and challenge macro-F1 against the number of training sentences."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [p["train_size"] for p in points]
    for key, label in (("test_macro_f1", "test"), ("challenge_macro_f1", "challenge (written apart)")):
        ax.plot(sizes, [p[key] for p in points], marker="o", label=label)
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
                "test_macro_f1": round(metrics["test"]["macro_f1"], 4),
                "challenge_macro_f1": round(metrics["challenge"]["macro_f1"], 4),
            }
        )
    output = Path(cfg.curve_output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(points, indent=2) + "\n")
    plot_curve(points, output.with_suffix(".png"))
    rows = [f"{'fraction':>9}{'sentences':>11}{'test F1':>9}{'challenge F1':>14}"]
    rows += [
        f"{p['train_fraction']:>9}{p['train_size']:>11}{p['test_macro_f1']:>9.3f}{p['challenge_macro_f1']:>14.3f}" for p in points
    ]
    log.info("\n%s\nSaved %s and %s", "\n".join(rows), output.with_suffix(".json"), output.with_suffix(".png"))
    return points
