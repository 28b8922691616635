"""Which backend ``backend=auto`` runs: the fastest one that keeps the answers, as measured for this CPU.

An export may hold ``backends.json``, written after training by ``export.record_backends``: each backend's
speed on this CPU, its held-out macro-F1 and its agreement with PyTorch fp32. A backend *qualifies* when
its macro-F1 on the held-out documents is at most ``F1_TOLERANCE`` below fp32's (point figures on the
whole split) and it gives fp32's label on at least ``MIN_AGREEMENT`` of the sentences fp32 answers at the
export's ``min_confidence``: the answers a user keeps. It must also be batch-stable: a sentence keeps its label
(on ``MIN_BATCH_AGREEMENT`` of them) when it is batched with other neighbours, since dynamic int8 quantises each
batch's activations with one scale, which would let the service's micro-batches and Ray's actors change a label
that a local run gives. The rule and the choice are pure functions of
those figures, with no torch, so ``Predictor`` picks its backend before loading anything.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from claimstance.inference.artifacts import ONNX_FILE, ONNX_INT8_FILE, ExportError, read_min_confidence

BACKENDS_FILE = "backends.json"  # per-backend speed and quality on the CPU it names, and auto's choice
ONNX_INT8_STATIC_FILE = "model_int8_static.onnx"  # static int8 (QDQ), activation ranges calibrated on training sentences
REFERENCE = "torch"  # PyTorch fp32: the answers every other backend is held to
BF16_BACKEND = "torch-bf16"  # PyTorch under bf16 autocast: only where the CPU has native bf16 instructions
ONNX_FILES = {"onnx": ONNX_FILE, "onnx-int8": ONNX_INT8_FILE, "onnx-int8-static": ONNX_INT8_STATIC_FILE}
CANDIDATES = (REFERENCE, BF16_BACKEND, *ONNX_FILES)  # every backend record_backends measures
F1_TOLERANCE = 0.005  # how far below fp32's held-out macro-F1 a backend may score
MIN_AGREEMENT = 0.995  # share of fp32's answered sentences that must keep fp32's label
MIN_BATCH_AGREEMENT = 0.999  # share of sentences whose label does not change with their batch neighbours
REGROUPED_BATCH = 5  # the other batching batch stability is measured with
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 matrix instructions
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", *BF16_FLAGS)  # flags the int8 and bf16 kernels use


def cpu_identity(cpuinfo: str | None = None) -> dict:
    """The processor's name and the instruction-set flags that decide which kernels run (Linux; else what ``platform`` knows)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    name, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return {"cpu": name, "flags": sorted(flags & set(SPEED_FLAGS))}


def cpu_has_bf16(identity: Mapping | None = None) -> bool:
    """True where the CPU has native bf16 matrix instructions: bf16 elsewhere is emulated, slower than fp32."""
    return bool(set((identity or cpu_identity())["flags"]) & set(BF16_FLAGS))


def runnable_backends(model_dir: str | Path, identity: Mapping | None = None) -> list[str]:
    """The backends of ``CANDIDATES`` this export and this CPU can run: their ONNX file is there, bf16 is native."""
    folder, identity = Path(model_dir), identity or cpu_identity()
    return [
        name
        for name in CANDIDATES
        if (name in ONNX_FILES and (folder / ONNX_FILES[name]).is_file())
        or (name == REFERENCE)
        or (name == BF16_BACKEND and cpu_has_bf16(identity))
    ]


def macro_f1(gold: Sequence[int], predicted: Sequence[int], n_labels: int) -> float:
    """Unweighted mean of the per-label F1 over the labels present in ``gold`` or ``predicted`` (scikit-learn's convention)."""
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    scores = []
    for label in range(n_labels):
        true_positive = np.sum((gold == label) & (predicted == label))
        support, guessed = np.sum(gold == label), np.sum(predicted == label)
        if support or guessed:
            scores.append(2 * true_positive / (support + guessed))
    return float(np.mean(scores)) if scores else 0.0


def f1_delta_interval(
    gold: Sequence[int], reference: Sequence[int], candidate: Sequence[int], n_labels: int, resamples: int = 1000
) -> list[float]:
    """95% interval of (candidate - reference) macro-F1 over sentence bootstrap resamples (seeded): how much of a
    difference the held-out split can tell apart from noise. Reported beside the rule, which uses the point figure."""
    gold, reference, candidate = np.asarray(gold), np.asarray(reference), np.asarray(candidate)
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(resamples):
        rows = rng.integers(0, len(gold), len(gold))
        deltas.append(macro_f1(gold[rows], candidate[rows], n_labels) - macro_f1(gold[rows], reference[rows], n_labels))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def answer_threshold(model_dir: str | Path) -> float | None:
    """The export's ``min_confidence`` fitted on validation (``calibration.json``), or None where none was reached."""
    threshold = read_min_confidence(model_dir).get("threshold")
    return None if threshold is None else float(threshold)


def quality(reference: np.ndarray, candidate: np.ndarray, gold: Sequence[int], threshold: float | None) -> dict:
    """A backend's held-out figures from its probabilities and fp32's (rows = sentences, columns = labels).

    ``answered``: the sentences whose fp32 top probability reaches ``threshold`` (all of them when it is None).
    """
    n_labels = reference.shape[1]
    ref_labels, labels = reference.argmax(-1), candidate.argmax(-1)
    answered = np.ones(len(reference), bool) if threshold is None else reference.max(-1) >= threshold
    return {
        "macro_f1": macro_f1(gold, labels, n_labels),
        "f1_delta_ci95": f1_delta_interval(gold, ref_labels, labels, n_labels),
        "accuracy": float(np.mean(labels == np.asarray(gold))),
        "agreement": float(np.mean(labels == ref_labels)),
        "agreement_answered": float(np.mean(labels[answered] == ref_labels[answered])) if answered.any() else 1.0,
        "answered": int(answered.sum()),
        "max_prob_diff": float(np.abs(reference - candidate).max()),
    }


def qualifies(
    row: Mapping, reference_f1: float, f1_tolerance: float = F1_TOLERANCE, min_agreement: float = MIN_AGREEMENT
) -> bool:
    """The rule: macro-F1 at most ``f1_tolerance`` below fp32's, fp32's label kept on ``min_agreement`` of its answers,
    and labels that do not depend on the batch (``MIN_BATCH_AGREEMENT``; rows measured before it count as stable)."""
    return (
        row["macro_f1"] >= reference_f1 - f1_tolerance - 1e-12
        and row["agreement_answered"] >= min_agreement
        and row.get("batch_agreement", 1.0) >= MIN_BATCH_AGREEMENT
    )


def fastest(rows: Mapping[str, Mapping], allowed: Sequence[str]) -> str | None:
    """The qualified backend of ``allowed`` with the highest recorded sentences/s, or None."""
    kept = [name for name in allowed if name in rows and rows[name].get("qualified")]
    return max(kept, key=lambda name: rows[name]["sentences_per_s"]) if kept else None


def fallback(model_dir: str | Path) -> str:
    """What auto runs without usable figures: ONNX fp32 if exported, else PyTorch."""
    return "onnx" if (Path(model_dir) / ONNX_FILE).is_file() else REFERENCE


def read_backends(model_dir: str | Path) -> dict | None:
    """``backends.json`` of an export, or None where it has none."""
    path = Path(model_dir) / BACKENDS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON ({err}); delete it or re-run record_backends") from err
    if not isinstance(record, dict) or not isinstance(record.get("backends"), dict) or "auto" not in record:
        raise ExportError(f"{path}: 'backends' and 'auto' are missing; delete it or re-run record_backends")
    return record


def choose_backend(model_dir: str | Path, identity: Mapping | None = None) -> tuple[str, str]:
    """``backend=auto``'s backend for this export on this CPU, and why, in words.

    The recorded choice where ``backends.json`` was measured on this CPU (name and flags); on another CPU the
    fastest recorded qualified backend that runs here; ONNX fp32 (else PyTorch) without figures or a
    qualified backend.
    """
    identity = dict(identity or cpu_identity())
    record, here = read_backends(model_dir), runnable_backends(model_dir, identity)
    if record is None:
        return fallback(model_dir), f"no {BACKENDS_FILE} in the export"
    measured_on = record.get("machine", {})
    same_cpu = measured_on.get("cpu") == identity["cpu"] and sorted(measured_on.get("flags", [])) == identity["flags"]
    if same_cpu and record["auto"] in here:
        return record["auto"], f"fastest qualified backend measured on this CPU ({identity['cpu']})"
    picked = fastest(record["backends"], here)
    if picked is None:
        return fallback(model_dir), "no qualified backend runs on this CPU"
    return picked, f"fastest qualified backend that runs here, measured on another CPU ({measured_on.get('cpu')})"
