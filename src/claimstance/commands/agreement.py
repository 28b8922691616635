"""Inter-annotator agreement: draw a seeded blind sample, then score a second pass against the corpus."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from sklearn.metrics import cohen_kappa_score, confusion_matrix

from claimstance.data.annotations import Annotation, AnnotationError, known_labels, load_annotations
from claimstance.data.textio import iter_jsonl
from claimstance.errors import ConfigError, exits_cleanly
from claimstance.tables import text_table

log = logging.getLogger(__name__)


def draw_sample(rows: Sequence[Annotation], size: int, seed: int, per_label: bool = False) -> list[dict]:
    """A seeded random sample as ``{id, text}`` only: the second annotator never sees a label.

    ``per_label`` draws the same number from every label (then shuffles), so that rare labels get
    enough sentences for a per-label kappa; the annotator still sees only text.
    """
    generator = random.Random(seed)
    if per_label:
        labels = sorted({row.label for row in rows})
        picked = [row for label in labels for row in generator.sample([r for r in rows if r.label == label], size // len(labels))]
        generator.shuffle(picked)
    else:
        picked = generator.sample(list(rows), size)
    return [{"id": row.id, "text": row.text} for row in picked]


def agreement(first: Mapping[str, str], second: Mapping[str, str], labels: Sequence[str]) -> dict:
    """Cohen's kappa, raw agreement and the confusion between two passes over the same ids."""
    ids = sorted(second)
    a = [first[i] for i in ids]
    b = [second[i] for i in ids]
    return {
        "size": len(ids),
        "raw_agreement": sum(x == y for x, y in zip(a, b, strict=True)) / len(ids),
        "cohen_kappa": float(cohen_kappa_score(a, b, labels=list(labels))),
        "per_label_kappa": {  # one label against the rest
            label: float(cohen_kappa_score([x == label for x in a], [y == label for y in b])) for label in labels
        },
        "labels": list(labels),
        "confusion_first_rows_second_columns": confusion_matrix(a, b, labels=list(labels)).tolist(),
        "disagreements": [{"id": i, "first": first[i], "second": second[i]} for i in ids if first[i] != second[i]],
    }


def read_second_pass(path: Path, labels: Sequence[str]) -> dict[str, str]:
    """``{id: label}`` from the second annotator's JSONL; every bad label is named by file and line."""
    labelled, problems = {}, []
    for number, record in iter_jsonl(path):
        if record.get("label") not in labels:
            problems.append(f"{path}:{number}: label must be one of {', '.join(labels)}")
        else:
            labelled[record["id"]] = record["label"]
    if problems:
        raise AnnotationError(problems)
    return labelled


@exits_cleanly
def run(cfg) -> dict | None:
    """``scripts/agreement.py``: ``action=draw`` writes the blind sample, ``action=score`` the report."""
    if cfg.action not in ("draw", "score"):
        raise ConfigError(f"action must be draw or score, got {cfg.action!r}")
    labels = known_labels(cfg.data)
    rows = load_annotations(cfg.annotations, labels).rows
    folder = Path(cfg.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.action == "draw":
        sample = draw_sample(rows, int(cfg.sample_size), int(cfg.seed), bool(cfg.per_label))
        (folder / "blind_sample.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
        log.info("Wrote %d unlabelled sentences to %s", len(sample), folder / "blind_sample.jsonl")
        return None
    first = {row.id: row.label for row in rows}
    second = read_second_pass(folder / "second_pass.jsonl", labels)
    unknown = sorted(set(second) - set(first))
    if unknown:
        raise AnnotationError([f"{folder / 'second_pass.jsonl'}: ids not in the corpus: {', '.join(unknown[:5])}"])
    report = agreement(first, second, labels)
    (folder / "agreement.json").write_text(json.dumps(report, indent=2))
    matrix = text_table(
        ["first \\ second", *labels],
        [[label, *row] for label, row in zip(labels, report["confusion_first_rows_second_columns"], strict=True)],
    )
    log.info(
        "Cohen's kappa %.3f, raw agreement %.3f on %d sentences", report["cohen_kappa"], report["raw_agreement"], report["size"]
    )
    log.info("\n%s", matrix)
    log.info(
        "Per-label kappa (one against the rest): %s", ", ".join(f"{k} {v:.3f}" for k, v in report["per_label_kappa"].items())
    )
    return report
