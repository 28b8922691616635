"""Compare the test metrics of several run folders: one table (CSV + Markdown) and one bar chart.

Any run folder with a ``metrics.json`` counts, fine-tuned or baseline, single run or sweep trial, so a run
is always read next to its floor (``model=tfidf_logreg``).
"""

from __future__ import annotations

import csv
import glob
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from claimstance.errors import ConfigError, exits_cleanly
from claimstance.plotting import plt, save_figure
from claimstance.tables import markdown_table

log = logging.getLogger(__name__)

SCORES = ("macro_f1", "accuracy")


def find_runs(patterns: Sequence[str]) -> list[Path]:
    """Folders matching the patterns (globs allowed) that hold a ``metrics.json``, in name order, each once."""
    found = {Path(p).resolve() for pattern in patterns for p in glob.glob(str(pattern)) if (Path(p) / "metrics.json").is_file()}
    return sorted(found)


def run_row(run: Path, splits: Sequence[str]) -> dict:
    """One table row: the run's name, model choice, overrides, train time and each split's scores."""
    metrics = json.loads((run / "metrics.json").read_text())
    hydra_file, overrides_file = run / ".hydra" / "hydra.yaml", run / ".hydra" / "overrides.yaml"
    model = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.model") if hydra_file.is_file() else None
    overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
    row = {
        "run": f"{run.parent.name}/{run.name}",
        "model": model or "",
        "overrides": " ".join(o for o in overrides if not o.startswith(("hydra.", "paths."))),
        "train_runtime_s": metrics.get("train_runtime_s"),
    }
    for split in splits:
        for key in SCORES:
            row[f"{split}_{key}"] = metrics[split][key] if split in metrics else None
    return row


def comparison_markdown(rows: Sequence[Mapping]) -> str:
    """The rows as a Markdown table, scores to three decimals, blank where a run lacks a split."""
    columns = list(rows[0])
    return markdown_table(columns, [["" if row[c] is None else row[c] for c in columns] for row in rows])


def plot_comparison(rows: Sequence[Mapping], splits: Sequence[str], path: Path) -> None:
    """Horizontal bars of macro-F1 per run, one bar per split."""
    y = np.arange(len(rows))
    height = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.5 * len(rows) * len(splits)))
    for i, split in enumerate(splits):
        values = [row[f"{split}_macro_f1"] for row in rows]  # None where the run lacks the split: no bar
        bars = ax.barh(y + i * height, [np.nan if v is None else v for v in values], height=height, label=split)
        ax.bar_label(bars, labels=["" if v is None else f"{v:.3f}" for v in values], padding=2, fontsize=8)
    ax.set_yticks(y + height * (len(splits) - 1) / 2, [f"{row['run']} ({row['model']})" for row in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("macro-F1")
    ax.set_title("macro-F1 by run")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # outside the bars
    save_figure(fig, path)


def compare(patterns: Sequence[str], splits: Sequence[str], out_dir: Path) -> list[dict]:
    """Write ``comparison.{csv,md,png}`` for the matching runs into ``out_dir``; return the rows."""
    runs = find_runs(patterns)
    if not runs:
        raise ConfigError(f"runs={list(patterns)}: no run folder with a metrics.json matches")
    rows = [run_row(run, splits) for run in runs]
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "comparison.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "comparison.md").write_text(comparison_markdown(rows) + "\n")
    plot_comparison(rows, splits, out_dir / "comparison.png")
    return rows


@exits_cleanly
def run(cfg: DictConfig) -> list[dict]:
    """``scripts/compare_runs.py``: compare the configured run folders and print the table."""
    out_dir = Path(cfg.paths.run_dir)
    rows = compare(list(cfg.runs), list(cfg.splits), out_dir)
    log.info("%s\n\nWritten to %s", comparison_markdown(rows), out_dir)
    return rows
