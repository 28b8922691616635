"""Evaluation with scikit-learn: scores, readable tables and plots.

Nothing here fetches metric scripts (``evaluate.load`` needs the hub); every figure comes from
``sklearn.metrics``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
)

from claimstance.errors import ConfigError
from claimstance.plotting import plt, save_figure
from claimstance.tables import text_table

log = logging.getLogger(__name__)


def _f1(average: str) -> Callable:
    return lambda y_true, y_pred, ids: f1_score(y_true, y_pred, labels=ids, average=average, zero_division=0)


# Every scalar score, by name: each lands in the split reports, the Trainer's eval logs (so any of them can be
# ``optimized_metric``), the trackers and metrics.json. Adding one here is all a new metric needs.
METRICS: dict[str, Callable[[Sequence[int], Sequence[int], list[int]], float]] = {
    "accuracy": lambda y_true, y_pred, ids: accuracy_score(y_true, y_pred),
    "macro_f1": _f1("macro"),
    "micro_f1": _f1("micro"),
    "weighted_f1": _f1("weighted"),
}
HEADLINE_METRIC = "macro_f1"  # the figure tables lead with, with its bootstrap interval

EVALUATION_EXCLUDES = ("train", "validation")  # every other split of the dataset is scored after training
BOOTSTRAP_RESAMPLES = 1000


def evaluated_splits(split_names) -> list[str]:
    """The splits a run scores, in dataset order: test (held-out documents) first, then the secondary ones."""
    return [name for name in split_names if name not in EVALUATION_EXCLUDES]


def macro_f1_from_confusion(matrices: np.ndarray) -> np.ndarray:
    """Macro-F1 of each confusion matrix in a stack (..., L, L), as sklearn computes it with zero_division=0.

    The bootstrap needs thousands of these; summing per-document confusion matrices and reading F1 off
    them is ~1000x faster than calling ``f1_score`` per resample (tested equal to it).
    """
    true_positives = np.diagonal(matrices, axis1=-2, axis2=-1)
    denominator = matrices.sum(axis=-1) + matrices.sum(axis=-2)  # 2TP + FP + FN
    f1 = np.divide(2 * true_positives, denominator, out=np.zeros(true_positives.shape), where=denominator > 0)
    return f1.mean(axis=-1)


def bootstrap_macro_f1(
    y_true: Sequence[int], y_pred: Sequence[int], n_labels: int, groups: Sequence[str] | None = None, seed: int = 0
) -> list[float]:
    """95% percentile interval of macro-F1 from ``scipy.stats.bootstrap``.

    With ``groups`` whole groups (documents) are resampled: sentences of one article are not
    independent, so a sentence-level bootstrap would give too narrow an interval.
    """
    truth, guess = np.asarray(y_true), np.asarray(y_pred)
    keys = np.asarray(groups if groups is not None else np.arange(len(truth)), dtype=str)
    names, member_of = np.unique(keys, return_inverse=True)
    if len(names) < 2:
        return [float("nan"), float("nan")]
    per_group = np.zeros((len(names), n_labels, n_labels), dtype=np.int64)  # one confusion matrix per group
    np.add.at(per_group, (member_of, truth, guess), 1)

    def macro_f1(picked: np.ndarray, axis: int = -1) -> np.ndarray:
        # per_group[picked] appends the two confusion axes, so ``axis`` is counted within ``picked`` only
        return macro_f1_from_confusion(per_group[picked].sum(axis=axis % picked.ndim))

    result = bootstrap(
        (np.arange(len(names)),),
        macro_f1,
        vectorized=True,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return [round(float(result.confidence_interval.low), 4), round(float(result.confidence_interval.high), 4)]


def pair_consistency(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str]) -> dict:
    """Contrast consistency: the share of minimal pairs (groups of 2+) with every sentence right."""
    right: dict[str, bool] = {}
    size: Counter = Counter(groups)
    for truth, guess, group in zip(y_true, y_pred, groups, strict=True):
        right[group] = right.get(group, True) and truth == guess
    pairs = [group for group in right if size[group] > 1]
    return {"pairs": len(pairs), "consistency": sum(right[g] for g in pairs) / len(pairs) if pairs else float("nan")}


def score(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    no_claim_label: str | None = None,
) -> dict:
    """Accuracy, macro/micro/weighted F1 with a bootstrap 95% interval, per-class P/R/F1/support, the confusion matrix.

    ``claim_macro_f1`` (when ``no_claim_label`` is among the labels) averages F1 over the claim labels only;
    ``pairs`` (when every group is a pair of sentences) is contrast consistency.
    """
    ids = list(range(len(labels)))
    per_class = classification_report(y_true, y_pred, labels=ids, target_names=list(labels), output_dict=True, zero_division=0)
    report = {
        **scalar_scores(y_true, y_pred, ids),
        "macro_f1_ci95": bootstrap_macro_f1(y_true, y_pred, len(labels), groups),
        "per_class": {
            name: {k: float(per_class[name][k]) for k in ("precision", "recall", "f1-score")}
            | {"support": int(per_class[name]["support"])}
            for name in labels
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "labels": list(labels),
        "size": len(y_true),
    }
    if no_claim_label in labels:
        claims = [i for i, name in enumerate(labels) if name != no_claim_label]
        report["claim_macro_f1"] = float(f1_score(y_true, y_pred, labels=claims, average="macro", zero_division=0))
    if groups is not None and set(Counter(groups).values()) == {2}:  # every group a minimal pair
        report["pairs"] = pair_consistency(y_true, y_pred, groups)
    return report


def scalar_scores(y_true: Sequence[int], y_pred: Sequence[int], ids: list[int]) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one set of predictions."""
    return {name: float(metric(y_true, y_pred, ids)) for name, metric in METRICS.items()}


def check_metric(name: str, key: str) -> None:
    """A config value naming a metric must name one of :data:`METRICS`."""
    if name not in METRICS:
        raise ConfigError(f"{key}={name!r} is not a metric; choose one of {sorted(METRICS)}")


def trainer_metrics(labels: Sequence[str]) -> Callable:
    """``compute_metrics`` for the HF Trainer: every metric of :data:`METRICS`, from logits."""

    def compute(prediction) -> dict[str, float]:
        return scalar_scores(prediction.label_ids, np.argmax(prediction.predictions, axis=-1), list(range(len(labels))))

    return compute


def format_report(report: Mapping, title: str) -> str:
    """Per-class table, averages and the confusion matrix as plain text."""
    labels = report["labels"]
    per_class = [
        [label, *(report["per_class"][label][k] for k in ("precision", "recall", "f1-score", "support"))] for label in labels
    ]
    low, high = report["macro_f1_ci95"]
    lines = [
        f"== {title} ({report['size']} sentences) ==",
        text_table(["label", "precision", "recall", "f1", "support"], per_class),
        f"accuracy {report['accuracy']:.3f}   macro-F1 {report['macro_f1']:.3f} (95% CI {low:.3f}-{high:.3f})   "
        f"weighted-F1 {report['weighted_f1']:.3f}",
    ]
    if "claim_macro_f1" in report:
        lines.append(f"claim labels only (macro-F1 over the {len(labels) - 1} claim labels): {report['claim_macro_f1']:.3f}")
    if "pairs" in report:
        lines.append(
            f"pair consistency (both sentences right): {report['pairs']['consistency']:.3f} of {report['pairs']['pairs']} groups"
        )
    lines.append("confusion matrix (rows = true, columns = predicted)")
    matrix = [[label, *row] for label, row in zip(labels, report["confusion_matrix"], strict=True)]
    lines.append(text_table(["true \\ predicted", *labels], matrix))
    return "\n".join(lines)


def plot_confusion(report: Mapping, path: Path, title: str) -> None:
    """Confusion matrix as counts and row-normalised, side by side."""
    matrix = np.array(report["confusion_matrix"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    for ax, values, fmt, name in ((axes[0], matrix, "d", "counts"), (axes[1], normalised, ".2f", "row-normalised")):
        ConfusionMatrixDisplay(values, display_labels=report["labels"]).plot(
            ax=ax, values_format=fmt, colorbar=False, cmap="Blues"
        )
        ax.set_title(f"{title}: {name}")
    save_figure(fig, path)


def plot_per_class(report: Mapping, path: Path, title: str) -> None:
    """Precision, recall and F1 bars for each label."""
    labels = report["labels"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 4))
    for offset, key in ((-0.27, "precision"), (0, "recall"), (0.27, "f1-score")):
        ax.bar(x + offset, [report["per_class"][label][key] for label in labels], width=0.27, label=key)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}: per-class scores (macro-F1 {report['macro_f1']:.3f})")
    ax.legend(loc="lower right")
    save_figure(fig, path)


def plot_history(log_history: Sequence[Mapping], path: Path, metric: str = HEADLINE_METRIC) -> None:
    """Training and validation loss, and the validation ``metric``, per epoch."""
    train = [(e["epoch"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["epoch"], e["eval_loss"], e.get(f"eval_{metric}")) for e in log_history if "eval_loss" in e]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        ax_loss.plot(*zip(*train, strict=True), marker="o", label="train loss")
    if evals:
        ax_loss.plot([e[0] for e in evals], [e[1] for e in evals], marker="o", label="validation loss")
        ax_f1.plot([e[0] for e in evals], [e[2] for e in evals], marker="o", color="tab:green")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("loss")
    ax_loss.legend()
    ax_f1.set_xlabel("epoch")
    ax_f1.set_ylim(0, 1.05)
    ax_f1.set_title(f"validation {metric}")
    save_figure(fig, path)


def write_report(report: Mapping, folder: Path, name: str) -> str:
    """Save ``<name>_report.{json,txt}`` and its plots; return the text table."""
    folder.mkdir(parents=True, exist_ok=True)
    text = format_report(report, name)
    (folder / f"{name}_report.txt").write_text(text + "\n")
    (folder / f"{name}_report.json").write_text(json.dumps(report, indent=2))
    plot_confusion(report, folder / f"{name}_confusion_matrix.png", name)
    plot_per_class(report, folder / f"{name}_per_class.png", name)
    return text
