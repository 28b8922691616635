"""Shared fixtures: small annotation folders, composed configs and one tiny trained export."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import claimstance.config  # noqa: F401  (registers resolvers)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "claimstance" / "configs"
TINY = ["model=tiny", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=2", "export.onnx=true"]
MODEL_STACK = ("torch", "transformers")  # ~10 s of imports on 2 cores: only slow tests load them
MODEL_MODULES = (  # the package modules that import them at the top
    "training.models",
    "training.transformer",
    "training.callbacks",
    "inference.export",
    "bench.measure",
    "bench.bound",
    "commands.benchmark",
)
LOADED_BEFORE_COLLECTION = {name for name in MODEL_STACK if name in sys.modules}  # by a pytest plugin, say: not ours


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collecting loads no test module's model stack, so ``make test-fast`` never pays for it."""
    loaded = [name for name in MODEL_STACK if name in sys.modules and name not in LOADED_BEFORE_COLLECTION]
    if loaded:
        raise pytest.UsageError(
            f"collecting the tests imported {', '.join(loaded)}: import it (and claimstance.{{{','.join(MODEL_MODULES)}}}) "
            "inside the slow tests that need it, not at the top of a test module"
        )


@pytest.fixture(autouse=True)
def fast_tests_stay_off_the_model_stack(request: pytest.FixtureRequest):
    """A test that is not marked slow and loads torch fails: mark it slow, or test the logic without the model stack."""
    loaded_before = "torch" in sys.modules
    yield
    if not loaded_before and "torch" in sys.modules and request.node.get_closest_marker("slow") is None:
        pytest.fail(f"{request.node.nodeid} loaded torch but is not marked @pytest.mark.slow")


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


@functools.cache
def composed(config_name: str, overrides: tuple[str, ...]) -> DictConfig:
    """Hydra's composition of ``overrides``, done once per test session (0.2-0.3 s each on 2 cores); callers copy it."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)


def compose_train(
    overrides: list[str], tmp_path: Path, config_name: str = "train", values: Mapping[str, object] | None = None
) -> DictConfig:
    """A config as ``scripts/*.py`` would compose it from ``overrides``, with every output under ``tmp_path``.

    ``values`` are set by dotted key on a copy of the composition, as Hydra sets a command-line ``key=value``
    once the defaults are merged: a test that varies only values (paths, seeds, labels) reuses one composition.
    """
    cfg = copy.deepcopy(composed(config_name, tuple(overrides)))
    paths = {"paths.output_dir": f"{tmp_path}/outputs", "paths.data_dir": f"{tmp_path}/data"}
    paths = {key: value for key, value in paths.items() if not any(o.startswith(f"{key}=") for o in overrides)}
    for key, value in (paths | dict(values or {})).items():
        OmegaConf.update(cfg, key, value, merge=True)
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
    """One tiny model trained through ``scripts/train.py`` and exported, shared by the tests that only read it.

    ``CLAIMSTANCE_TINY_EXPORT`` hands a parent session's export to a child pytest (see ``in_private_network``).
    """
    if os.environ.get("CLAIMSTANCE_TINY_EXPORT"):
        return Path(os.environ["CLAIMSTANCE_TINY_EXPORT"])
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


PRIVATE_NETWORK = "CLAIMSTANCE_PRIVATE_NETWORK"  # set inside the namespace, so the child runs the tests itself


def can_isolate_network() -> bool:
    """Root with ``unshare`` and ``ip``: a test can run in a network namespace that has only a loopback interface."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None


def in_private_network(tests: str, tiny: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run ``pytest tests`` in a fresh network namespace with only ``lo`` up, for servers that cannot bind to 127.0.0.1.

    Ray binds its GCS, raylet and worker ports on every interface whatever node address it is given; inside the
    namespace there is no interface but loopback, so nothing it opens is reachable from outside this machine.
    """
    command = [
        "unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow", *tests.split(),
    ]  # fmt: skip
    env = os.environ | {PRIVATE_NETWORK: "1", "CLAIMSTANCE_TINY_EXPORT": str(tiny), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
