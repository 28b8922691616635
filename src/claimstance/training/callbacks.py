"""Hugging Face Trainer callbacks, apart from ``tracking`` so that the run harness, the trackers and the
scikit-learn baseline load without transformers (and torch)."""

from __future__ import annotations

import csv
from pathlib import Path

from transformers import TrainerCallback


class HistoryCSV(TrainerCallback):
    """Append every value the Trainer logs to ``metrics_history.csv`` in the run folder."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "metrics_history.csv"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "epoch", "name", "value"])
            for name, value in logs.items():
                writer.writerow([state.global_step, state.epoch, name, value])
