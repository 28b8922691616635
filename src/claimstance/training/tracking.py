"""Experiment tracking (TensorBoard, MLflow) and sweep summaries (a Hydra callback), wired to our run folders.

The HF Trainer's own integrations (``logger.report_to``) log parameters and every epoch while training runs;
a tracker here adds what only exists once the run is over: test and challenge scores, the confusion matrices,
the model card and the full Hydra config. Trackers are chosen by ``logger.trackers`` (``_target_`` entries) and
only the main process of a distributed run creates them.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from claimstance.evaluation.metrics import METRICS

log = logging.getLogger(__name__)


def resolved(cfg: DictConfig) -> dict:
    """The run config as plain containers, interpolations resolved, without Hydra's own node (if composed with it)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run config as ``dotted.key -> value`` (lists as text), the form of a command-line override."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = str(node) if isinstance(node, list) else node

    walk(resolved(cfg), "")
    return flat


def final_metrics(metrics: Mapping) -> dict[str, float]:
    """Scores known once the run is over, named ``split/metric`` like the Trainer's ``eval/...`` curves."""
    values = {
        f"validation/best_{metrics['optimized_metric']}": metrics.get("best_validation"),
        "train/runtime_s": metrics.get("train_runtime_s"),
        "calibration/temperature": metrics["calibration"]["temperature"],
    }
    for split in metrics["evaluated"]:
        report = metrics[split]
        values |= {f"{split}/{key}": report[key] for key in METRICS}
        values |= {f"{split}/ece": metrics["calibration"]["splits"][split]["ece_after"]}
        values |= {f"{split}/f1_{label}": row["f1-score"] for label, row in report["per_class"].items()}
    return {name: float(value) for name, value in values.items() if value is not None}


def run_plots(run_dir: Path) -> list[Path]:
    """The PNG files the run wrote (confusion matrices, per-class bars, training curves)."""
    return sorted(run_dir.glob("*.png"))


class Tracker:
    """One tracking backend: ``start`` before training, ``finish`` after the export (main process only)."""

    def start(self, cfg: DictConfig, run_dir: Path) -> None:
        """Open the record of this run; nothing to do for backends that only write at the end."""

    def finish(self, cfg: DictConfig, metrics: Mapping, run_dir: Path, export_dir: Path) -> None:
        """Log what only exists after the run: final scores, plots, model card."""
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """Final scalars, confusion matrices, model card, config and an HParams entry in the run's event folder.

    The Trainer's TensorBoardCallback writes the per-epoch curves to the same folder (``TENSORBOARD_LOGGING_DIR``),
    so ``tensorboard --logdir outputs`` shows one run per folder and, for a sweep, the HParams table of its trials.
    """

    def __init__(self, log_dir: str):
        self.log_dir = Path(log_dir)

    def finish(self, cfg: DictConfig, metrics: Mapping, run_dir: Path, export_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from claimstance.plotting import plt

        scores = final_metrics(metrics)
        card = export_dir / "README.md"
        with SummaryWriter(str(self.log_dir)) as writer:
            for name, value in scores.items():
                writer.add_scalar(name, value)
            for split in metrics["evaluated"]:
                image = run_dir / f"{split}_confusion_matrix.png"
                if image.is_file():
                    writer.add_image(f"{split}/confusion_matrix", plt.imread(image)[..., :3], dataformats="HWC")
            if card.is_file():
                writer.add_text("model_card", card.read_text(encoding="utf-8"))
            config = OmegaConf.to_yaml(resolved(cfg))
            writer.add_text("config", "    " + config.replace("\n", "\n    "))  # indented: shown as a code block
            hparams = {k: v for k, v in flat_params(cfg).items() if isinstance(v, bool | int | float | str)}
            writer.add_hparams(hparams, {f"hparams/{k.replace('/', '_')}": v for k, v in scores.items()}, run_name=".")
        log.info("TensorBoard: %s", self.log_dir)


class MLflowTracker(Tracker):
    """One MLflow run per run folder: Hydra params, per-epoch metrics, final scores, plots and the model card.

    ``start`` opens the run before training, so the Trainer's MLflowCallback (``report_to: [mlflow]``) logs its
    parameters and every epoch into it instead of opening its own; ``finish`` adds the final record and closes it.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location

    def start(self, cfg: DictConfig, run_dir: Path) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.active_run() is not None:  # left open by an earlier trial of this process that crashed
            mlflow.end_run(status="FAILED")
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is None:
            # a local sqlite store would put artifacts under the working directory (./mlruns); a server keeps its own
            local = self.tracking_uri.startswith("sqlite:")
            experiment_id = mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location if local else None)
        else:
            experiment_id = experiment.experiment_id
        name = "/".join(Path(run_dir).parts[-2:])  # runs/<stamp> or <sweep stamp>/<trial>
        mlflow.start_run(experiment_id=experiment_id, run_name=name, tags={"run_dir": str(run_dir)})
        mlflow.log_params(flat_params(cfg))

    def finish(self, cfg: DictConfig, metrics: Mapping, run_dir: Path, export_dir: Path) -> None:
        import mlflow

        mlflow.log_metrics(final_metrics(metrics))
        for path in run_plots(run_dir):
            mlflow.log_artifact(str(path), "plots")
        for name in ("README.md", "metrics.json"):
            if (export_dir / name).is_file():
                mlflow.log_artifact(str(export_dir / name), "model_card")
        run = mlflow.active_run()
        mlflow.end_run()
        log.info("MLflow: run %s in experiment %r at %s", run.info.run_id, self.experiment, self.tracking_uri)


def apply_logger_env(cfg: DictConfig) -> None:
    """Export ``logger.env`` (e.g. TENSORBOARD_LOGGING_DIR, MLFLOW_TRACKING_URI): the Trainer's integrations read it."""
    for key, value in (cfg.logger.get("env") or {}).items():
        os.environ[key] = str(value)


def start_tracking(cfg: DictConfig, run_dir: Path, main: bool) -> list[Tracker]:
    """Create ``logger.trackers`` and open their runs; the other ranks of a distributed run track nothing."""
    if not main:
        return []
    trackers = [instantiate(spec) for spec in (cfg.logger.get("trackers") or {}).values()]
    for tracker in trackers:
        tracker.start(cfg, Path(run_dir))
    return trackers


def finish_tracking(trackers: Sequence[Tracker], cfg: DictConfig, metrics: Mapping, run_dir: Path, export_dir: Path) -> None:
    """Log the final record of the run to every tracker."""
    for tracker in trackers:
        tracker.finish(cfg, metrics, Path(run_dir), Path(export_dir))


TRIAL_FILE = "sweep_trial.json"


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """``["a.b=1", "model=tiny"]`` -> ``{"a.b": "1", "model": "tiny"}``."""
    return dict(override.split("=", 1) for override in overrides if "=" in override)


def summarise_sweep(trials: Sequence[Mapping], direction: str) -> dict:
    """Best trial (its params, score, export and command line) and every trial, from the per-trial records."""
    scored = [t for t in trials if t["score"] is not None]
    best = None
    if scored:
        pick = max if direction == "maximize" else min
        top = pick(scored, key=lambda t: t["score"])
        rerun = [o for o in top["overrides"] if not o.startswith(("hparams_search=", "hydra"))]
        best = {
            "job": top["job"],
            "score": top["score"],
            "params": top["params"],
            "export": top["export"],
            "run_dir": top["run_dir"],
            "command": "python scripts/train.py " + " ".join(rerun),  # trains the best trial again, alone
        }
    return {
        "direction": direction,
        "n_trials": len(trials),
        "n_failed": len(trials) - len(scored),
        "best": best,
        "trials": list(trials),
    }


def write_sweep_summary(summary: Mapping, folder: Path) -> None:
    """``sweep_summary.json`` and ``sweep_summary.csv`` (one row per trial, one column per swept parameter)."""
    (folder / "sweep_summary.json").write_text(json.dumps(summary, indent=2))
    columns: dict[str, None] = {}
    for trial in summary["trials"]:
        columns |= dict.fromkeys(trial["params"])
    with (folder / "sweep_summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", "status", "score", *columns, "export"])
        for trial in summary["trials"]:
            params = trial["params"]
            writer.writerow(
                [trial["job"], trial["status"], trial["score"], *(params.get(c, "") for c in columns), trial["export"]]
            )


class SweepSummary(Callback):
    """Hydra callback for ``-m`` sweeps: every trial's overrides and objective in one table, and the best export.

    Each trial leaves a record in its own folder (``on_job_end`` runs wherever the job runs, SLURM included);
    the launching process gathers them when the sweep ends.
    """

    def __init__(self, direction: str = "maximize"):
        self.direction = direction

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        done = job_return.status == JobStatus.COMPLETED
        export = OmegaConf.select(config, "export.dir", default=None)
        overrides = parse_overrides(job_return.overrides or [])
        swept = OmegaConf.select(config, "hydra.sweeper.params", default=None) or overrides  # the search space, else all
        record = {
            "job": int(config.hydra.job.num),
            "status": job_return.status.name,
            "score": float(job_return.return_value) if done and job_return.return_value is not None else None,
            "params": {key: value for key, value in overrides.items() if key in swept},
            "overrides": list(job_return.overrides or []),
            "run_dir": str(run_dir),
            "export": str(export) if done and export and Path(export).is_dir() else None,
        }
        (run_dir / TRIAL_FILE).write_text(json.dumps(record, indent=2))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        trials = sorted((json.loads(p.read_text()) for p in sweep_dir.rglob(TRIAL_FILE)), key=lambda t: t["job"])
        summary = summarise_sweep(trials, self.direction)
        write_sweep_summary(summary, sweep_dir)
        best = summary["best"]
        if best:
            log.info(
                "Sweep: best score %.4f (job %s) %s\nBest export: %s", best["score"], best["job"], best["params"], best["export"]
            )
        log.info("Sweep summary: %s", sweep_dir / "sweep_summary.csv")
