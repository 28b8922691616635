"""The model-kind protocol: what a run, ``evaluate`` and ``audit`` need from a model, whichever library fits it.

A kind is chosen by ``configs/model/*.yaml`` (``_target_``, called with ``labels=``) and goes through one path:
fit, logits per split, save an export folder, load it back. So ``train()``, the card and the scorers never ask
which library is underneath, and a new kind costs one class and one YAML file. The export records the kind's
class (``model_kind.json``), which is how :func:`load_kind` finds its way back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
from datasets import Dataset, DatasetDict
from hydra.utils import get_class
from omegaconf import DictConfig

from claimstance.inference.artifacts import KIND_FILE, ExportError, read_kind

# An export without model_kind.json is a transformer export: they came first, and their config.json says so.
TRANSFORMER_KIND = "claimstance.training.transformer.TransformerKind"


class ModelKind(Protocol):
    """A trainable classifier: the members every model kind offers (see the module docstring for why)."""

    labels: list[str]

    def fit(self, dataset: DatasetDict, cfg: DictConfig, run_dir: Path) -> dict:
        """Train on ``dataset["train"]`` (``"validation"`` may pick the checkpoint); return the training figures."""
        ...

    def logits(self, split: Dataset) -> np.ndarray:
        """One row per row of ``split``, in order; the softmax of a row is the model's probabilities."""
        ...

    def save(self, folder: Path, files: Mapping[str, str]) -> dict:
        """Write the export folder whole (atomically), with the extra ``files`` (name -> text); return its checks."""
        ...

    @classmethod
    def load(cls, folder: Path) -> ModelKind:
        """An export folder back."""
        ...

    def card(self) -> dict:
        """What the model card says about this kind: ``kind``, ``title``, ``library_name``, ``base_model``, ``usage``."""
        ...


def kind_file(kind: ModelKind) -> dict[str, str]:
    """``model_kind.json`` for an export: the kind's class and labels, so :func:`load_kind` needs no guess."""
    cls = type(kind)
    return {KIND_FILE: json.dumps({"class": f"{cls.__module__}.{cls.__qualname__}", "labels": list(kind.labels)}, indent=2)}


def load_kind(folder: str | Path) -> ModelKind:
    """Any claimstance export back as its model kind, by the class its ``model_kind.json`` names."""
    folder = Path(folder)
    spec = read_kind(folder)
    name = spec["class"] if spec else TRANSFORMER_KIND
    try:
        cls = get_class(name)
    except (ImportError, ValueError) as err:
        raise ExportError(f"{folder / KIND_FILE}: model kind {name} cannot be imported ({err})") from err
    return cls.load(folder)
