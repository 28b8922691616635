"""Scaling up: 2-process DDP on the CPU, an Optuna sweep, cluster launcher configs, trackers, the baseline, run comparison."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from conftest import ROOT, compose_train, corpus_sample, run_script, write_jsonl
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from claimstance.training.tracking import MLflowTracker, TensorBoardTracker, summarise_sweep

LABELS = {"commitment", "caution", "request", "none"}
# A quick tiny run on 20 sentences per label, no challenge set, no ONNX.
QUICK = ["model=tiny", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=2", "export.onnx=false"]


@pytest.fixture
def tiny_data(tmp_path: Path) -> list[str]:
    """Overrides that point a run at a 60-sentence corpus and keep every output under ``tmp_path``."""
    write_jsonl(tmp_path / "ann" / "corpus.jsonl", corpus_sample(20))
    return [
        "data=sentences",
        f"data.annotations={tmp_path}/ann",
        "data.challenge=null",
        f"data.output_dir={tmp_path}/processed",
        f"paths.output_dir={tmp_path}/outputs",
    ]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_share_one_run_folder_and_one_export(tmp_path, tiny_data):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*command, str(ROOT / "scripts" / "train.py"), *QUICK, *tiny_data, "+trainer.args.ddp_backend=gloo", "trainer.threads=1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs  # both ranks derived the same folder from their launcher
    run = runs[0]
    from transformers import pipeline

    answer = pipeline("text-classification", model=str(run / "model"))("The union demanded talks.")
    assert answer[0]["label"] in LABELS

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["train_loss"] < 1.5  # about ln 3 for 3 classes; the Trainer doubled it when it scaled by world size
    # Each rank trained on half the data: fewer optimizer steps than one process would take, one RNG state per rank.
    checkpoint = max((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    steps = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    n_train = metrics["data_counts"]["train"]["total"]
    assert steps == 2 * math.ceil(math.ceil(n_train / 2) / 16) < 2 * math.ceil(n_train / 16)
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()

    log = (run / "train.log").read_text()
    assert log.count("Dataset saved to") == 1 and log.count("Reusing dataset") == 1  # rank 0 built it, rank 1 waited
    assert log.count("Exported model:") == 1  # only rank 0 evaluated and exported


@pytest.mark.slow
def test_optuna_sweep_of_two_trials_writes_summary_and_best_export(tmp_path, tiny_data):
    sweep = tmp_path / "sweep"
    fixed = ["model=tiny", "export.onnx=false", "trainer.args.num_train_epochs=1"]  # a fixed value leaves the search space
    result = run_script(
        "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *fixed, *tiny_data, f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    summary = json.loads((sweep / "sweep_summary.json").read_text())
    trials = summary["trials"]
    assert summary["n_trials"] == 2 and [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    for trial in trials:
        assert 1e-5 <= float(trial["params"]["trainer.args.learning_rate"]) <= 2e-4
        assert trial["params"]["trainer.args.per_device_train_batch_size"] in {"8", "16", "32"}
        assert trial["params"]["trainer.args.num_train_epochs"] == "1"
        assert trial["score"] == json.loads((Path(trial["run_dir"]) / "metrics.json").read_text())["best_validation"]
    assert trials[0]["params"] != trials[1]["params"]
    best = summary["best"]
    assert best["score"] == max(t["score"] for t in trials)
    assert best["score"] == pytest.approx(OmegaConf.load(sweep / "optimization_results.yaml").best_value)
    assert "hparams_search" not in best["command"] and "trainer.args.learning_rate=" in best["command"]
    assert json.loads((Path(best["export"]) / "config.json").read_text())["id2label"]["0"] == "commitment"
    with (sweep / "sweep_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and "trainer.args.weight_decay" in rows[0]


def test_sweep_summary_picks_by_direction_and_skips_failed_trials():
    def trial(job: int, score: float | None) -> dict:
        return {"job": job, "score": score, "params": {"x": str(job)}, "overrides": [f"x={job}"], "export": None, "run_dir": "r"}

    trials = [trial(0, 0.5), trial(1, None), trial(2, 0.7)]
    assert summarise_sweep(trials, "maximize")["best"]["job"] == 2
    low = summarise_sweep(trials, "minimize")
    assert low["best"]["job"] == 0 and low["n_failed"] == 1


@pytest.mark.parametrize("launcher, target", [("slurm", "SlurmLauncher"), ("local", "LocalLauncher")])
def test_submitit_launcher_configs_compose(tmp_path, launcher, target):
    cfg = compose_train([f"hydra/launcher={launcher}", "hparams_search=optuna"], tmp_path)
    assert cfg.hydra.launcher._target_.endswith(target)
    get_class(cfg.hydra.launcher._target_)  # the plugin is installed
    assert cfg.hydra.launcher.tasks_per_node == 1
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {
        f"trainer.args.{key}"
        for key in ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "warmup_steps", "weight_decay")
    }


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
def test_tracking_loggers_keep_the_csv_history(tmp_path, logger):
    cfg = compose_train([f"logger={logger}"], tmp_path)
    assert list(cfg.logger.report_to) == [logger]
    assert cfg.logger.callbacks.csv._target_ == "claimstance.training.callbacks.HistoryCSV"
    tracker = instantiate(cfg.logger.trackers[logger])
    if logger == "tensorboard":  # the final record goes beside the Trainer's per-epoch curves, in the run folder
        assert isinstance(tracker, TensorBoardTracker) and tracker.log_dir == tmp_path / "run" / "tensorboard"
    else:  # a local store under paths.output_dir, never ./mlruns in the working directory
        assert isinstance(tracker, MLflowTracker) and tracker.experiment == "claimstance"
        assert tracker.tracking_uri == f"sqlite:///{tmp_path}/outputs/mlflow/mlflow.db"
        assert tracker.artifact_location == f"{tmp_path}/outputs/mlflow/artifacts"


@pytest.mark.slow
def test_tensorboard_logger_writes_epoch_curves_and_the_final_record(tmp_path, tiny_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_script("train.py", *QUICK, *tiny_data, "logger=tensorboard", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    assert len(events.Scalars("eval/macro_f1")) == 2  # one per epoch, from the Trainer
    test_f1 = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["macro_f1"]
    assert events.Scalars("test/macro_f1")[0].value == pytest.approx(test_f1)
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert {"model_card/text_summary", "config/text_summary"} <= set(events.Tags()["tensors"])
    assert (tmp_path / "run" / "metrics_history.csv").is_file()


@pytest.mark.slow
def test_mlflow_logger_records_one_run_in_the_local_store(tmp_path, tiny_data):
    from mlflow.tracking import MlflowClient

    result = run_script("train.py", *QUICK, *tiny_data, "logger=mlflow", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("claimstance")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["run_dir"] == str(tmp_path / "run")
    assert run.data.params["trainer.args.learning_rate"] == "0.001"
    assert len(client.get_metric_history(run.info.run_id, "eval_macro_f1")) == 2  # one per epoch, from the Trainer
    test_f1 = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["macro_f1"]
    assert run.data.metrics["test/macro_f1"] == pytest.approx(test_f1)
    artifacts = {a.path for folder in ("plots", "model_card") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"plots/test_confusion_matrix.png", "model_card/README.md"} <= artifacts
    assert (tmp_path / "outputs" / "mlflow" / "artifacts").is_dir() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_tfidf_baseline_scores_the_same_splits_and_compares_with_a_transformer_run(tiny_export, tmp_path):
    base, tiny_run = tiny_export.parents[1], tiny_export.parent
    result = run_script(
        "train.py",
        "model=tfidf_logreg",
        "data=sentences",
        f"data.annotations={base}/ann",
        f"data.challenge={ROOT}/data/challenge",
        f"data.output_dir={base}/processed",
        f"paths.output_dir={tmp_path}/outputs",
        f"hydra.run.dir={tmp_path}/baseline",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = tmp_path / "baseline"

    def ids(folder: Path) -> list[str]:
        return [json.loads(line)["id"] for line in (folder / "test_predictions.jsonl").read_text().splitlines()]

    assert ids(run) == ids(tiny_run)  # the same test split as the transformer
    metrics = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    recomputed = f1_score(
        [r["gold"] for r in rows], [r["predicted"] for r in rows], labels=metrics["labels"], average="macro", zero_division=0
    )
    assert metrics["challenge"]["size"] == 280 and metrics["test"]["macro_f1"] == pytest.approx(recomputed)
    for name in ("test_report.txt", "test_confusion_matrix.png", "test_per_class.png", "model/README.md"):
        assert (run / name).is_file(), name
    model = joblib.load(run / "model" / "model.joblib")
    assert set(model.predict(["The ministry said it will double the grant.", "Brussels urged members to act."])) <= LABELS

    result = run_script("compare_runs.py", f"runs=[{tiny_run},{run}]", f"hydra.run.dir={tmp_path}/compare")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with (tmp_path / "compare" / "comparison.csv").open() as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"tiny", "tfidf_logreg"}
    assert float(rows["tfidf_logreg"]["test_macro_f1"]) == pytest.approx(metrics["test"]["macro_f1"])
    compare = tmp_path / "compare"
    assert (compare / "comparison.png").is_file() and re.search(r"^\| run +\|", (compare / "comparison.md").read_text())
