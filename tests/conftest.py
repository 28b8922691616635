"""Shared fixtures: small annotation folders, composed configs and one tiny trained export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import claimstance.config  # noqa: F401  (registers resolvers)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TINY = ["model=tiny", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=2", "export.onnx=true"]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def corpus_sample(per_label: int) -> list[dict]:
    """The first ``per_label`` rows of each label from the project's own corpus."""
    picked: dict[str, list[dict]] = defaultdict(list)
    for path in sorted((ROOT / "data" / "annotations").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if len(picked[row["label"]]) < per_label:
                picked[row["label"]].append(row)
    return [row for rows in picked.values() for row in rows]


def document_sample(documents_per_field: int) -> list[dict]:
    """Whole documents (every row) from the project's document corpus, the first few of each field."""
    picked = []
    for path in sorted((ROOT / "data" / "documents").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        keep = sorted({row["doc"] for row in rows})[:documents_per_field]
        picked += [row for row in rows if row["doc"] in keep]
    return picked


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A folder with 40 sentences per label, split over two files."""
    rows = corpus_sample(40)
    write_jsonl(tmp_path / "ann" / "a.jsonl", rows[::2])
    write_jsonl(tmp_path / "ann" / "b.jsonl", rows[1::2])
    return tmp_path / "ann"


def compose_train(overrides: list[str], tmp_path: Path, config_name: str = "train") -> DictConfig:
    """Compose a config as ``scripts/*.py`` would, with every output under ``tmp_path``."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose(
            config_name=config_name,
            overrides=[f"paths.output_dir={tmp_path}/outputs", f"paths.data_dir={tmp_path}/data", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp_path / "run")
    return cfg


def run_script(script: str, *overrides: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` in a fresh interpreter, as a user would."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *overrides],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """One tiny model trained through ``scripts/train.py`` and exported, shared by the tests that only read it."""
    base = tmp_path_factory.mktemp("tiny")
    rows = corpus_sample(40)
    write_jsonl(base / "ann" / "corpus.jsonl", rows)
    result = run_script(
        "train.py",
        *TINY,
        "data=sentences",
        f"data.annotations={base}/ann",
        f"data.challenge={ROOT}/data/challenge",
        f"data.output_dir={base}/processed",
        f"paths.output_dir={base}/outputs",
        f"hydra.run.dir={base}/run",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return base / "run" / "model"
