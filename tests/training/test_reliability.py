"""Promises a user relies on: resume after SIGKILL, determinism, atomic export, no clobbering, clean failures."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose_train, corpus_sample, run_script, write_jsonl

from claimstance.errors import UserError
from claimstance.inference.artifacts import ExportError, check_export

EPOCHS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("rel")
    write_jsonl(base / "ann" / "corpus.jsonl", corpus_sample(40))
    return base


def train_args(corpus: Path, run: Path, *extra: str) -> list[str]:
    return [
        *TINY,
        f"trainer.args.num_train_epochs={EPOCHS}",
        "trainer.early_stopping_patience=100",
        "export.onnx=false",
        "data=sentences",
        f"data.annotations={corpus}/ann",
        "data.challenge=null",
        f"data.output_dir={corpus}/processed",
        f"paths.output_dir={corpus}/outputs",
        f"hydra.run.dir={run}",
        *extra,
    ]


def in_process_args(corpus: Path, *extra: str) -> list[str]:
    """``train_args`` for ``compose_train``: the run folder is set by the caller, not by ``hydra.run.dir``."""
    return [arg for arg in train_args(corpus, Path("unused"), *extra) if not arg.startswith("hydra.run.dir=")]


def exit_message(cfg, caplog) -> str:
    """Run ``scripts/train.py``'s ``run(cfg)`` in this process; it must exit 2 with one logged error."""
    from claimstance.commands.train import run as train_run

    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        train_run(cfg)
    assert exit_info.value.code == 2 and isinstance(exit_info.value.__cause__, UserError)  # no traceback shown
    (message,) = [r.getMessage() for r in caplog.records if r.name == "claimstance" and r.levelno == logging.ERROR]
    return message


def outcome(run: Path) -> tuple[dict, list[str]]:
    metrics = json.loads((run / "metrics.json").read_text())
    predictions = (run / "test_predictions.jsonl").read_text().splitlines()
    return metrics["test"], predictions


@pytest.fixture(scope="module")
def straight_run(corpus) -> Path:
    run = corpus / "straight"
    result = run_script("train.py", *train_args(corpus, run))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return run


@pytest.mark.slow
def test_same_seed_gives_identical_predictions_and_metrics(corpus, straight_run):
    again = corpus / "again"
    assert run_script("train.py", *train_args(corpus, again)).returncode == 0
    assert outcome(again) == outcome(straight_run)


@pytest.mark.slow
def test_training_seed_does_not_change_the_split(corpus, straight_run):
    other = corpus / "seed7"
    assert run_script("train.py", *train_args(corpus, other, "seed=7")).returncode == 0
    ids = [json.loads(line)["id"] for line in outcome(other)[1]]
    assert ids == [json.loads(line)["id"] for line in outcome(straight_run)[1]]
    assert (
        json.loads((other / "metrics.json").read_text())["train_loss"]
        != json.loads((straight_run / "metrics.json").read_text())["train_loss"]
    )


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(corpus, straight_run):
    run = corpus / "killed"
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *train_args(corpus, run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not list(run.glob("checkpoints/checkpoint-*/trainer_state.json")):
        assert process.poll() is None, "training ended before a checkpoint could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "metrics.json").exists() and not (run / "model").exists()

    result = run_script("train.py", *train_args(corpus, run, f"resume_from={run}"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Resuming from" in (run / "train.log").read_text()
    assert outcome(run) == outcome(straight_run)


@pytest.mark.slow  # loads torch
def test_existing_export_is_not_overwritten_without_permission(corpus, tmp_path, caplog):
    target = tmp_path / "model"  # an export already in place (check before any work: its contents are not read)
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"weights")
    before = (target / "model.safetensors").stat().st_mtime_ns
    cfg = compose_train(in_process_args(corpus, f"export.dir={target}"), tmp_path)
    assert "an export is already there; pass overwrite=true" in exit_message(cfg, caplog)
    assert (target / "model.safetensors").stat().st_mtime_ns == before
    assert (target / "model.safetensors").read_bytes() == b"weights" and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow  # starts processes
def test_ranks_of_one_launch_share_a_run_folder_and_separate_launches_do_not():
    """Ranks of a torchrun launch are children of one launcher: they must all write to that launcher's folder."""
    code = "import claimstance.config as c; print(c.run_dir(None, 'out'))"

    def folders(world_size: str) -> list[str]:
        env = os.environ | {"WORLD_SIZE": world_size}
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)]
        return [p.communicate()[0].strip() for p in procs]

    ranks = folders("2")
    assert len(set(ranks)) == 1 and ranks[0].endswith(f"_{os.getpid()}")  # named after this process, their launcher
    assert len(set(folders("1"))) == 3  # single runs started together: one folder each


@pytest.mark.slow  # loads torch
def test_resume_without_checkpoint_is_a_clear_error(corpus, tmp_path, caplog):
    empty = tmp_path / "empty"
    cfg = compose_train(in_process_args(corpus, f"resume_from={empty}"), tmp_path)
    cfg.paths.run_dir = str(empty)  # as Hydra sets it: a resumed run continues in its own folder
    assert "no checkpoint-* folder under" in exit_message(cfg, caplog)


def corrupt_copy(source: Path, target: Path, damage) -> Path:
    shutil.copytree(source, target)
    damage(target)
    return target


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "weights file model.safetensors is missing"),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
            "unreadable or truncated",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps(
                    {k: v for k, v in json.loads((d / "config.json").read_text()).items() if k not in ("id2label", "label2id")}
                )
            ),
            "no label names in id2label",
        ),
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "tokenizer_config.json").unlink(), "tokenizer file tokenizer_config.json is missing"),
    ],
)
def test_incomplete_or_corrupt_export_is_named(tiny_export, tmp_path, damage, message):
    broken = corrupt_copy(tiny_export, tmp_path / "broken", damage)
    with pytest.raises(ExportError, match=message):
        check_export(broken)


@pytest.mark.slow
def test_failed_export_leaves_nothing_behind(tiny_export, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import claimstance.inference.export as export

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_export))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_export))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "export_onnx", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_model(model, tokenizer, tmp_path / "model", files={}, sample_texts=["a"], onnx=True)
    assert list(tmp_path.iterdir()) == []
