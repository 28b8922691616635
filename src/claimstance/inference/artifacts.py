"""What an exported model folder holds, and the check that a folder is one.

Both sides use this module: ``export`` writes these files and ``predict`` reads them, so neither has
to import the other to know a file name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from claimstance.errors import UserError

WEIGHTS = "model.safetensors"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model_int8.onnx"
TOKENIZER_FILES = ("tokenizer_config.json",)
CALIBRATION_FILE = "calibration.json"  # temperature fitted on the validation split (claimstance.evaluation.calibration)
BASELINE_FILE = "model.joblib"  # a fitted scikit-learn Pipeline (model=tfidf_logreg)
METRICS_FILE = "metrics.json"
KIND_FILE = "model_kind.json"  # the model kind's class and labels (claimstance.training.kinds.load_kind reads it)


class ExportError(UserError, RuntimeError):
    """An export that could not be written or verified, or a folder that is not a usable export."""


def refuse_existing_export(target: str | Path, overwrite: bool) -> None:
    """Stop before any work when an export is already at ``target``, unless ``overwrite`` allows replacing it."""
    if Path(target).exists() and not overwrite:
        raise ExportError(f"{target}: an export is already there; pass overwrite=true to replace it")


def is_transformer_export(model_dir: str | Path) -> bool:
    """Whether a folder holds a Hugging Face model (``config.json``), which :class:`Predictor` loads, rather than another kind."""
    return (Path(model_dir) / "config.json").is_file()


def read_kind(model_dir: str | Path) -> dict | None:
    """The export's ``model_kind.json`` (``class``, ``labels``), or None for an export written before it existed."""
    path = Path(model_dir) / KIND_FILE
    if not Path(model_dir).is_dir():
        raise ExportError(f"{model_dir}: model folder does not exist; pass the 'model' folder of a finished run")
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(spec["class"], str) or not all(isinstance(label, str) for label in spec["labels"]):
            raise TypeError("class must be a name and labels a list of names")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ExportError(f"{path}: unreadable model kind ({err}); re-export the model") from err
    return spec


def _check_weights(weights: Path) -> None:
    """Compare the safetensors header with the file size: a truncated file fails here, not half-way through loading.

    Reads only the header (no torch), so checking an export costs nothing on the ONNX path.
    """
    try:
        with weights.open("rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_size))
        needed = 8 + header_size + max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, MemoryError, OverflowError) as err:
        raise ExportError(f"{weights}: weights are unreadable or truncated (bad header: {err})") from err
    size = weights.stat().st_size
    if size < needed:
        raise ExportError(f"{weights}: weights are unreadable or truncated ({size} bytes, the header needs {needed})")


def check_export(model_dir: str | Path, expected_labels: Sequence[str] | None = None) -> list[str]:
    """Validate an exported folder before loading it; return its label names in id order.

    Names the first thing wrong: missing folder, a TF-IDF baseline folder, config, label names, tokenizer
    or weights, a truncated safetensors file, or labels other than ``expected_labels``.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ExportError(f"{folder}: model folder does not exist; pass the 'model' folder of a finished run")
    config_path = folder / "config.json"
    if (folder / BASELINE_FILE).is_file() and not config_path.is_file():
        raise ExportError(
            f"{folder}: this is a TF-IDF + logistic regression baseline export ({BASELINE_FILE}), not a transformer; "
            f'score it with scripts/evaluate.py model_dir={folder}, load it with joblib.load("{folder / BASELINE_FILE}")'
            ".predict([...]), or pass a transformer export"
        )
    if not config_path.is_file():
        raise ExportError(f"{folder}: config.json is missing; this is not a complete export")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{config_path}: not valid JSON ({err})") from err
    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)] if id2label else []
    if not labels or all(label.startswith("LABEL_") for label in labels):
        raise ExportError(f"{config_path}: no label names in id2label; re-export the model with claimstance")
    for name in TOKENIZER_FILES:
        if not (folder / name).is_file():
            raise ExportError(f"{folder}: tokenizer file {name} is missing")
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ExportError(f"{folder}: weights file {WEIGHTS} is missing")
    _check_weights(weights)
    if expected_labels is not None and list(expected_labels) != labels:
        raise ExportError(
            f"{folder}: model was trained for labels {labels} but {list(expected_labels)} were expected; "
            "use a model trained with these labels or change data.labels"
        )
    return labels


def read_min_confidence(model_dir: str | Path) -> dict:
    """The abstain threshold fitted on validation, ``{"target", "threshold", "coverage"}`` (``calibration.json``); {} if none."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        chosen = json.loads(path.read_text(encoding="utf-8")).get("min_confidence") or {}
    except (json.JSONDecodeError, AttributeError) as err:
        raise ExportError(f"{path}: unreadable calibration ({err}); re-export the model") from err
    if not isinstance(chosen, dict):
        raise ExportError(f"{path}: unreadable calibration (min_confidence is {type(chosen).__name__}); re-export the model")
    return chosen


def read_temperature(model_dir: str | Path) -> float:
    """The export's fitted temperature (1.0 = uncalibrated, for exports made before calibration existed)."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        temperature = float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{path}: unreadable calibration ({err}); re-export the model") from err
    if not temperature > 0:
        raise ExportError(f"{path}: temperature must be > 0, got {temperature}")
    return temperature
