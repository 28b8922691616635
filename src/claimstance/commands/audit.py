"""``audit``: find the labels that are probably wrong, from k-fold out-of-fold probabilities and cleanlab.

The rows are whatever the data config prepares (the project's corpora, or ``data=table``), so the audit checks
exactly what training would learn from. Writes ``issues.jsonl`` (the suspect rows, most suspect first),
``audit.html`` and ``summary.json`` into ``output_dir``, whole or not at all.

``inject.share`` > 0 measures the audit itself: that share of the labels is moved, seeded, to another label
before the folds are trained, and ``summary.json`` reports the precision and recall of the flagged rows
against the moved ones (``injected.jsonl`` lists them).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path

import jinja2
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, concatenate_datasets

from claimstance.atomic import staged_folder
from claimstance.data.dataset import prepare_dataset
from claimstance.errors import ConfigError, UserError, exits_cleanly
from claimstance.inference.report import NEUTRAL, NEUTRAL_TEXT, PALETTE
from claimstance.training.crossval import OutOfFold, kind_factory, out_of_fold

log = logging.getLogger(__name__)
ISSUES_FILE = "issues.jsonl"
PAGE_FILE = "audit.html"
SUMMARY_FILE = "summary.json"
INJECTED_FILE = "injected.jsonl"
FILTER_BY = (  # cleanlab's filter_by options (find_label_issues)
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)
RANK_BY = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def audited_rows(dataset: DatasetDict, splits: Sequence[str] | None) -> Dataset:
    """The chosen splits as one dataset with a ``split`` column; ``None`` = every split but the challenge set."""
    names = list(splits) if splits else [name for name in dataset if name != "challenge"]
    unknown = [name for name in names if name not in dataset]
    if unknown:
        raise ConfigError(f"splits: {', '.join(unknown)} not in the prepared dataset; it has {', '.join(dataset)}")
    return concatenate_datasets([dataset[name].add_column("split", [name] * len(dataset[name])) for name in names])


def flip_labels(given: np.ndarray, n_labels: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels with ``round(share * rows)`` random rows moved to a uniformly chosen other label, those rows sorted)."""
    if not 0 <= share < 1:
        raise ConfigError(f"inject.share must be in [0, 1), got {share!r}")
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(given), size=round(share * len(given)), replace=False))
    noisy = np.array(given, copy=True)
    noisy[flipped] = (noisy[flipped] + rng.integers(1, n_labels, size=len(flipped))) % n_labels
    return noisy, flipped


def relabelled(rows: Dataset, labels: np.ndarray) -> Dataset:
    """``rows`` with its ``label`` column replaced (same label names)."""
    feature = ClassLabel(names=rows.features["label"].names)
    return rows.remove_columns("label").add_column("label", labels.tolist(), feature=feature)


def injection_scores(flagged: np.ndarray, quality: np.ndarray, flipped: np.ndarray) -> dict:
    """How well the audit finds the labels it was given wrong: precision and recall of the flagged rows,
    and precision among the ``len(flipped)`` rows of lowest label quality (flagged or not)."""
    hits = len(set(flagged.tolist()) & set(flipped.tolist()))
    lowest = set(np.argsort(quality, kind="stable")[: len(flipped)].tolist())
    return {
        "flipped": len(flipped),
        "flagged": len(flagged),
        "flagged_and_flipped": hits,
        "precision": round(hits / len(flagged), 4) if len(flagged) else None,
        "recall": round(hits / len(flipped), 4) if len(flipped) else None,
        "precision_at_flipped": round(len(lowest & set(flipped.tolist())) / len(flipped), 4) if len(flipped) else None,
    }


def check_options(filter_by: str, rank_by: str) -> None:
    """Fail before k models are fitted: cleanlab installed, a known filter and ranking."""
    try:
        import cleanlab  # noqa: F401
    except ImportError as err:
        raise UserError("audit needs cleanlab: pip install 'claimstance[quality]'") from err
    if filter_by not in FILTER_BY:
        raise ConfigError(f"filter_by must be one of {', '.join(FILTER_BY)}, got {filter_by!r}")
    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")


def find_issues(given: np.ndarray, probabilities: np.ndarray, filter_by: str, rank_by: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices of suspect rows, most suspect first; every row's label quality score) from cleanlab."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    ranked = find_label_issues(
        labels=given, pred_probs=probabilities, filter_by=filter_by, return_indices_ranked_by=rank_by, n_jobs=1
    )
    return np.asarray(ranked, dtype=int), get_label_quality_scores(given, probabilities, method=rank_by)


def issue_rows(rows: Dataset, oof: OutOfFold, ranked: np.ndarray, quality: np.ndarray, labels: Sequence[str]) -> list[dict]:
    """One record per suspect row: what it says, what the out-of-fold model suggests, and how sure it is."""
    out = []
    for rank, i in enumerate(ranked.tolist(), 1):
        row, p = rows[i], oof.probabilities[i]
        suggested = int(p.argmax())
        out.append(
            {
                "rank": rank,
                "id": row["id"],
                "text": row["text"],
                "given_label": labels[row["label"]],
                "suggested_label": labels[suggested],
                "confidence": round(float(p[suggested]), 6),
                "label_quality": round(float(quality[i]), 6),
                "self_confidence": round(float(p[row["label"]]), 6),
                "group": row.get("group"),
                "split": row["split"],
                "fold": int(oof.fold[i]),
                "probabilities": {label: round(float(q), 6) for label, q in zip(labels, p, strict=True)},
            }
        )
    return out


def render_audit(issues: Sequence[Mapping], labels: Sequence[str], summary: Mapping, no_claim_label: str | None) -> str:
    """The audit page (``templates/audit.html.j2``): suspect rows by rank, labels coloured as in the predict report."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("claimstance.inference") / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    colours = [
        {"background": NEUTRAL[0], "accent": NEUTRAL[1], "text": NEUTRAL_TEXT}
        if label == no_claim_label
        else {"background": PALETTE[i % len(PALETTE)][0], "accent": PALETTE[i % len(PALETTE)][1], "text": None}
        for i, label in enumerate(labels)
    ]
    css = {label: f"c{i}" for i, label in enumerate(labels)}
    flagged = Counter(row["given_label"] for row in issues)
    legend = [
        {"name": label, "css": css[label], "given": summary["given"].get(label, 0), "flagged": flagged[label]} for label in labels
    ]
    shown = [row | {"given_css": css[row["given_label"]], "suggested_css": css[row["suggested_label"]]} for row in issues]
    return environment.get_template("audit.html.j2").render(colours=colours, legend=legend, issues=shown, **summary)


@exits_cleanly
def run(cfg) -> int:
    """``scripts/audit.py``: see ``configs/audit.yaml`` for every option; returns how many labels were flagged."""
    check_options(cfg.filter_by, cfg.rank_by)
    rows = audited_rows(prepare_dataset(cfg.data), cfg.splits)
    labels = list(rows.features["label"].names)
    original = np.asarray(rows["label"])
    noisy, flipped = flip_labels(original, len(labels), float(cfg.inject.share), int(cfg.inject.seed))
    if len(flipped):
        rows = relabelled(rows, noisy)
        log.info("Moved %d label(s) (inject.share=%s, seed %s) before the audit", len(flipped), cfg.inject.share, cfg.inject.seed)
    oof = out_of_fold(rows, kind_factory(cfg, labels), cfg, int(cfg.folds), int(cfg.fold_seed), float(cfg.validation_share))
    given = np.asarray(rows["label"])
    ranked, quality = find_issues(given, oof.probabilities, cfg.filter_by, cfg.rank_by)
    issues = issue_rows(rows, oof, ranked, quality, labels)
    summary = {
        "title": cfg.title,
        "total": len(rows),
        "folds": int(cfg.folds),
        "grouped": oof.grouped,
        "model": str(cfg.model.get("_target_", "")).rsplit(".", 1)[-1],
        "accuracy": float((oof.probabilities.argmax(axis=1) == given).mean()),
        "filter_by": cfg.filter_by,
        "rank_by": cfg.rank_by,
        "given": {labels[i]: n for i, n in sorted(Counter(given.tolist()).items())},
    }
    if len(flipped):
        summary["injected"] = injection_scores(ranked, quality, flipped)
        moved = set(flipped.tolist())
        for row, i in zip(issues, ranked.tolist(), strict=True):
            row["injected"] = i in moved
            if i in moved:
                row["original_label"] = labels[original[i]]
    no_claim = cfg.data.get("no_claim_label")
    page = render_audit(issues, labels, summary, no_claim if no_claim in labels else None)
    with staged_folder(Path(cfg.output_dir)) as staging:
        with open(staging / ISSUES_FILE, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in issues)
        (staging / PAGE_FILE).write_text(page, encoding="utf-8")
        (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if len(flipped):
            flagged = set(ranked.tolist())
            with open(staging / INJECTED_FILE, "w", encoding="utf-8") as handle:
                for i in flipped.tolist():
                    moved_row = {"id": rows[i]["id"], "original_label": labels[original[i]], "given_label": labels[noisy[i]]}
                    handle.write(json.dumps(moved_row | {"flagged": i in flagged}, ensure_ascii=False) + "\n")
    log.info(
        "%d of %d label(s) flagged (out-of-fold accuracy %.3f); wrote %s and %s in %s",
        len(issues),
        len(rows),
        summary["accuracy"],
        ISSUES_FILE,
        PAGE_FILE,
        cfg.output_dir,
    )
    if len(flipped):
        log.info("Injected errors: %s", summary["injected"])
    return len(issues)
