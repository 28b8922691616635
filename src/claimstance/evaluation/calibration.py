"""Confidence that means what it says: temperature scaling, calibration error and an abstain threshold.

A fine-tuned classifier answers ~0.99 on right and wrong sentences alike. Temperature scaling
(Guo et al., 2017) divides the logits by one number fitted on the validation split, which keeps every
label the same and makes the top probability track accuracy. The fit is one bounded 1-D minimisation
of the negative log-likelihood with ``scipy.optimize.minimize_scalar``: netcal does the same but pulls
in a deep-learning stack of its own, and scipy is already a dependency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss

from claimstance.plotting import plt, save_figure

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def fit_temperature(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)`` on ``labels``."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if len(labels) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=-1)[np.arange(len(labels)), labels].mean())

    low, high = np.log(TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded").x))


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of temperature-scaled logits, rows in input order."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def reliability(probs: np.ndarray, labels: Sequence[int], bins: int = ECE_BINS) -> dict:
    """Top-label reliability: accuracy and mean confidence per confidence bin, and the expected calibration error.

    The bins are scikit-learn's ``calibration_curve`` (uniform, empty bins dropped) on the question
    "was the top label right?"; ECE weighs each bin's |accuracy - confidence| gap by its share of sentences.
    """
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == np.asarray(labels)).astype(int)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)  # the bins calibration_curve uses
    weights = counts[counts > 0] / len(confidence)
    return {
        "ece": float(np.sum(weights * np.abs(accuracy - mean_confidence))),
        "accuracy": accuracy.tolist(),
        "confidence": mean_confidence.tolist(),
        "share": weights.tolist(),
    }


def coverage_curve(probs: np.ndarray, labels: Sequence[int]) -> dict:
    """Accuracy of the answers kept at each confidence threshold, from the surest answers down to keeping all.

    One point per distinct confidence: sentences tied at a threshold are kept or dropped together, as
    ``min_confidence`` would.
    """
    confidence = probs.max(axis=-1)
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    correct = (probs.argmax(axis=-1) == np.asarray(labels))[order]
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # the last sentence of each tie
    kept = ends + 1
    return {
        "threshold": ranked[ends].tolist(),
        "coverage": (kept / len(order)).tolist(),
        "accuracy": (np.cumsum(correct)[ends] / kept).tolist(),
    }


COVERAGE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # the min_confidence values a run reports coverage and precision for


def coverage_at(probs: np.ndarray, labels: Sequence[int], thresholds: Sequence[float] = COVERAGE_THRESHOLDS) -> list[dict]:
    """For each ``min_confidence``: the share of sentences answered and the precision of those answers.

    The trade-off a user picks a threshold from; precision is None where nothing is answered.
    """
    confidence = probs.max(axis=-1)
    correct = probs.argmax(axis=-1) == np.asarray(labels)
    rows = []
    for threshold in thresholds:
        kept = confidence >= threshold
        precision = round(float(correct[kept].mean()), 4) if kept.any() else None
        rows.append({"min_confidence": threshold, "coverage": round(float(kept.mean()), 4), "precision": precision})
    return rows


def threshold_for_precision(probs: np.ndarray, labels: Sequence[int], target: float) -> dict:
    """The lowest ``min_confidence`` whose kept answers are right at least ``target`` of the time, and its coverage.

    Precision here is the accuracy of the answers not abstained on. None when no threshold reaches the target.
    """
    curve = coverage_curve(probs, labels)
    reaching = [i for i, accuracy in enumerate(curve["accuracy"]) if accuracy >= target]
    if not reaching:
        return {"target": target, "threshold": None, "coverage": 0.0}
    best = reaching[-1]  # the most answers kept while still at the target
    return {"target": target, "threshold": round(curve["threshold"][best], 4), "coverage": round(curve["coverage"][best], 4)}


def calibration_report(logits: np.ndarray, labels: Sequence[int], temperature: float) -> dict:
    """ECE and log-loss of one split before and after temperature scaling."""
    before, after = probabilities(logits), probabilities(logits, temperature)
    classes = list(range(np.asarray(logits).shape[-1]))
    return {
        "temperature": temperature,
        "ece_before": round(reliability(before, labels)["ece"], 4),
        "ece_after": round(reliability(after, labels)["ece"], 4),
        "log_loss_before": round(float(log_loss(labels, before, labels=classes)), 4),
        "log_loss_after": round(float(log_loss(labels, after, labels=classes)), 4),
    }


def plot_reliability(logits: np.ndarray, labels: Sequence[int], temperature: float, path: Path, title: str) -> None:
    """Reliability diagram: accuracy against confidence per bin, before and after scaling, with the diagonal."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for name, t, colour in (("before", 1.0, "tab:red"), (f"after (T={temperature:.2f})", temperature, "tab:blue")):
        curve = reliability(probabilities(logits, t), labels)
        ax.plot(curve["confidence"], curve["accuracy"], marker="o", color=colour, label=f"{name}: ECE {curve['ece']:.3f}")
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: reliability")
    ax.legend(loc="upper left")
    save_figure(fig, path)


def plot_coverage(curves: Mapping[str, Mapping], threshold: Mapping, path: Path) -> None:
    """Accuracy of kept answers against coverage for each split, with the validation threshold marked."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, curve in curves.items():
        ax.plot(curve["coverage"], curve["accuracy"], label=name)
    if threshold.get("threshold") is not None:
        ax.axhline(threshold["target"], color="grey", linestyle=":", linewidth=1)
        ax.axvline(threshold["coverage"], color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            f"min_confidence={threshold['threshold']:.2f}\n(validation {threshold['target']:.0%} precision)",
            (threshold["coverage"], threshold["target"]),
            textcoords="offset points",
            xytext=(6, -30),
            fontsize=8,
        )
    ax.set_xlabel("coverage (share of sentences answered)")
    ax.set_ylabel("accuracy of the answers kept")
    ax.set_xlim(0, 1.01)
    ax.set_title("abstaining below a confidence threshold")
    ax.legend(loc="lower left")
    save_figure(fig, path)
