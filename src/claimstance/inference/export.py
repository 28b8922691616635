"""Write a self-contained, verified model folder, atomically.

Everything (weights, config with label names, tokenizer, ONNX, metrics, config, card, and with held-out
sentences the int8 models and ``backends.json``) is written into a hidden staging folder next to the target
and renamed into place only once complete, so a crash or kill never leaves a folder that looks like a
finished export.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from claimstance.atomic import staged_file, staged_folder
from claimstance.inference import backends as rule
from claimstance.inference.artifacts import ONNX_FILE, ONNX_INT8_FILE, ExportError, check_export, refuse_existing_export
from claimstance.inference.predictor import Predictor, Text

log = logging.getLogger(__name__)


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


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    """The quantizer logs a line per tensor on the root logger: muted while it runs."""
    muted = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(muted)


@contextmanager
def staged_model(target: Path) -> Iterator[Path]:
    """A hidden path beside ``target`` to write a model file to, renamed over ``target`` only once written."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".onnx", dir=target.parent)
    os.close(handle)
    try:
        yield Path(name)
        mask = os.umask(0o077)
        os.umask(mask)
        os.chmod(name, 0o666 & ~mask)  # as open() would, not mkstemp's private 0600
        os.replace(name, target)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the matrix multiplications (ONNX Runtime), one weight scale per output channel.

    Activations are scaled per batch at run time, so nothing needs calibrating.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_quantizer(), staged_model(target) as staging:
        quantize_dynamic(str(source), str(staging), weight_type=QuantType.QInt8, per_channel=True)


class SentenceBatches:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over sentences: one padded batch of model inputs per call."""

    def __init__(self, predictor: Predictor, texts: Sequence[Text], batch_size: int = 32):
        self._batches = iter([predictor.encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize_static_int8(folder: Path, target: Path, calibration_texts: Sequence[Text]) -> None:
    """Static int8 (QDQ) of the dense layers' matrix multiplications, activation ranges calibrated on ``calibration_texts``.

    Only MatMuls with a constant weight are quantized (``MatMulConstBOnly``): attention's activation-by-activation
    products and the softmax, layer norms and additions stay fp32, where static ranges cost the most accuracy.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration_texts:
        raise ExportError(f"{target}: static int8 needs calibration sentences (the training split); none were given")
    reader = SentenceBatches(Predictor(folder, backend="onnx"), list(calibration_texts))
    with quiet_quantizer(), staged_model(target) as staging:
        quantize_static(
            str(folder / ONNX_FILE),
            str(staging),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"MatMulConstBOnly": True},
        )


def compare_backends(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Label agreement and largest probability difference between two probability arrays."""
    return {
        "label_agreement": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        "max_prob_diff": float(np.max(np.abs(reference - candidate))),
    }


def verify_onnx(folder: Path, texts: Sequence[str], onnx_file: str, tolerance: float | None) -> dict[str, float]:
    """Compare an ONNX model with the PyTorch weights on ``texts``; fail past ``tolerance``."""
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


def sentences_per_s(predictors: Mapping[str, Predictor], texts: Sequence[Text], repeats: int) -> dict[str, float]:
    """Each predictor's rate on ``texts``, fastest of ``repeats`` passes taken in turn, so that load from other
    processes falls on every backend alike."""
    best = dict.fromkeys(predictors, float("inf"))
    for predictor in predictors.values():
        predictor.predict_proba(texts[:32])  # warm-up
    for _ in range(max(1, repeats)):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict_proba(texts)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def record_backends(
    folder: str | Path,
    heldout_texts: Sequence[Text],
    heldout_labels: Sequence[int],
    calibration_texts: Sequence[Text],
    *,
    speed_sentences: int = 512,
    calibration_sentences: int = 512,
    repeats: int = 3,
    threads: int | None = None,
    batch_size: int = 32,
    f1_tolerance: float = rule.F1_TOLERANCE,
    min_agreement: float = rule.MIN_AGREEMENT,
) -> dict:
    """Measure every backend this CPU runs on an export with ``model.onnx``; write ``backends.json`` and return it.

    Makes the int8 models the folder lacks (dynamic; static calibrated on a seeded sample of ``calibration_sentences``
    of ``calibration_texts``, the training sentences). Quality: each backend's labels on the held-out documents
    (``heldout_labels`` are label ids) against PyTorch fp32's, judged by ``inference.backends.qualifies``. Speed:
    sentences/s on the first ``speed_sentences`` held-out sentences. ``auto`` is the fastest qualified backend.
    Inputs are sentences, or ``{"text", "text_pair"}`` dicts for a model trained on pairs.
    """
    folder = Path(folder)
    if not (folder / ONNX_FILE).is_file():
        raise ExportError(f"{folder}: {ONNX_FILE} is missing; backends are measured on an export made with export.onnx=true")
    if not heldout_texts:
        raise ExportError(f"{folder}: no held-out sentences to measure the backends on (the test split is empty)")
    if not (folder / ONNX_INT8_FILE).is_file():
        quantize_int8(folder / ONNX_FILE, folder / ONNX_INT8_FILE)
    if not (folder / rule.ONNX_INT8_STATIC_FILE).is_file():
        pool = list(calibration_texts)
        sample = random.Random(0).sample(pool, min(calibration_sentences, len(pool)))  # seeded: across the whole split
        quantize_static_int8(folder, folder / rule.ONNX_INT8_STATIC_FILE, sample)
    identity = rule.cpu_identity()
    predictors = {
        name: Predictor(folder, backend=name, threads=threads, batch_size=batch_size)
        for name in rule.runnable_backends(folder, identity)
    }
    probabilities = {name: predictor.predict_proba(heldout_texts) for name, predictor in predictors.items()}
    regrouped = {  # the same sentences with other batch neighbours: a label must not depend on them
        name: Predictor(folder, backend=name, threads=threads, batch_size=rule.REGROUPED_BATCH).predict_proba(heldout_texts)
        for name in predictors
    }
    speeds = sentences_per_s(predictors, list(heldout_texts)[:speed_sentences], repeats)
    threshold = rule.answer_threshold(folder)
    rows = {
        name: {"sentences_per_s": speeds[name], **rule.quality(probabilities[rule.REFERENCE], probs, heldout_labels, threshold)}
        for name, probs in probabilities.items()
    }
    for name, row in rows.items():
        row["batch_agreement"] = float(np.mean(probabilities[name].argmax(-1) == regrouped[name].argmax(-1)))
    for row in rows.values():
        row["qualified"] = rule.qualifies(row, rows[rule.REFERENCE]["macro_f1"], f1_tolerance, min_agreement)
    record = {
        "machine": {**identity, "threads": next(iter(predictors.values())).threads},
        "rule": {
            "reference": rule.REFERENCE,
            "f1_tolerance": f1_tolerance,
            "min_agreement": min_agreement,
            "min_batch_agreement": rule.MIN_BATCH_AGREEMENT,
            "regrouped_batch": rule.REGROUPED_BATCH,
            "answered_at_min_confidence": threshold,
            "f1": "point figure on the whole held-out split",
        },
        "heldout_sentences": len(heldout_texts),
        "speed_sentences": min(speed_sentences, len(heldout_texts)),
        "backends": rows,
        "auto": rule.fastest(rows, list(rows)) or rule.fallback(folder),
    }
    with staged_file(folder / rule.BACKENDS_FILE) as handle:
        json.dump(record, handle, indent=2)
    log.info("backend=auto will run %s on this CPU (%s)", record["auto"], identity["cpu"])
    return record


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
    heldout: tuple[Sequence[Text], Sequence[int]] | None = None,
    calibration_texts: Sequence[Text] = (),
) -> dict:
    """Write the model folder atomically; return the ONNX verification figures.

    ``files`` maps extra file names (card, metrics, config, ``calibration.json``) to their text. With ``heldout``
    (the test split's sentences and label ids) and ONNX, the int8 models and ``backends.json`` are made too
    (``record_backends``), so ``backend=auto`` runs the fastest backend that keeps the answers.
    """
    target = Path(target)
    refuse_existing_export(target, overwrite)
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
        if onnx and heldout is not None:
            checks["auto_backend"] = record_backends(staging, *heldout, calibration_texts)["auto"]
        (staging / "export_checks.json").write_text(json.dumps(checks, indent=2))
    return checks
