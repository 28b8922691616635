"""Validated annotations -> a seeded, stratified ``datasets.DatasetDict`` saved to disk.

Pure functions (label selection, split, summary) are kept apart from :func:`prepare_dataset`,
which owns the side effects: staleness check, atomic save and the printed table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    Value,
    disable_progress_bars,
    enable_progress_bars,
    load_from_disk,
)
from sklearn.model_selection import train_test_split

from claimstance.annotations import Annotation, AnnotationError, LoadResult, annotation_files, load_annotations
from claimstance.atomic import staged_folder
from claimstance.config import data_problems, exits_cleanly, raise_problems
from claimstance.corpus import normalise_text

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUMMARY_FILE = "summary.json"


def select_labels(rows: Sequence[Annotation], labels: Sequence[str]) -> tuple[list[Annotation], Counter]:
    """Rows whose label is in the configured set, and a count of the others left out."""
    wanted = set(labels)
    kept = [row for row in rows if row.label in wanted]
    left_out = Counter(row.label for row in rows if row.label not in wanted)
    return kept, left_out


def minimum_per_label(fractions: Mapping[str, float]) -> int:
    """Examples a label needs so a stratified split can give every split at least one."""
    return max(2, math.ceil(1 / min(fractions.values())))


def check_label_counts(rows: Sequence[Annotation], labels: Sequence[str], fractions: Mapping[str, float], where: str) -> None:
    """Fail before splitting if a configured label is missing or too rare to stratify."""
    counts = Counter(row.label for row in rows)
    needed = minimum_per_label(fractions)
    problems = []
    for label in labels:
        if counts[label] == 0:
            problems.append(
                f"{where}: label '{label}' is in data.labels but has no examples; annotate some or remove it from data.labels"
            )
        elif counts[label] < needed:
            problems.append(
                f"{where}: label '{label}' has {counts[label]} example(s); a stratified split with fractions "
                f"{dict(fractions)} needs at least {needed}"
            )
    if problems:
        raise AnnotationError(problems)


def split_rows(rows: Sequence[Annotation], fractions: Mapping[str, float], seed: int) -> dict[str, list[Annotation]]:
    """Seeded split stratified by label, in two scikit-learn steps (test, then validation), sizes rounded."""
    labels = [row.label for row in rows]
    n_test, n_validation = (max(1, round(fractions[name] * len(rows))) for name in ("test", "validation"))
    rest, test = train_test_split(list(rows), test_size=n_test, stratify=labels, random_state=seed)
    train, validation = train_test_split(rest, test_size=n_validation, stratify=[row.label for row in rest], random_state=seed)
    return {"train": train, "validation": validation, "test": test}


def subsample(train: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded, label-stratified share of the training split (for learning curves); 0 < fraction <= 1."""
    if fraction == 1:
        return train
    return train.train_test_split(train_size=fraction, stratify_by_column="label", seed=seed)["train"]


def features_for(labels: Sequence[str]) -> Features:
    """Column types: the label is a ``ClassLabel`` so names travel with the data."""
    return Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "label": ClassLabel(names=list(labels)),
            "domain": Value("string"),
            "source": Value("string"),
        }
    )


def to_dataset(rows: Sequence[Annotation], labels: Sequence[str]) -> Dataset:
    """Rows -> ``Dataset`` with ``ClassLabel`` labels in config order."""
    columns = {name: [getattr(row, name) for row in rows] for name in ("id", "text", "domain", "source")}
    columns["label"] = [labels.index(row.label) for row in rows]
    return Dataset.from_dict(columns, features=features_for(labels))


def label_table(dataset: DatasetDict) -> dict[str, dict[str, int]]:
    """Counts per split x label, with totals, for printing and the JSON summary."""
    table = {}
    for split, part in dataset.items():
        names = part.features["label"].names
        counts = Counter(part["label"])
        table[split] = {name: counts[i] for i, name in enumerate(names)} | {"total": len(part)}
    return table


def format_table(table: Mapping[str, Mapping[str, int]]) -> str:
    """Plain-text table, one row per split."""
    columns = list(next(iter(table.values())))
    width = max(len(c) for c in columns) + 2
    lines = ["split".ljust(12) + "".join(c.rjust(width) for c in columns)]
    lines += [split.ljust(12) + "".join(str(row[c]).rjust(width) for c in columns) for split, row in table.items()]
    return "\n".join(lines)


def fingerprint(files: Sequence[Path], settings: Mapping) -> str:
    """Hash of the annotation bytes and split settings; a change makes the saved dataset stale."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_dataset(data_cfg: Mapping) -> tuple[DatasetDict, dict]:
    """Load, validate, filter and split; returns the dataset and its summary. No files written."""
    raise_problems(data_problems(data_cfg))
    labels = list(data_cfg["labels"])
    known = list(data_cfg["known_labels"])
    fractions = dict(data_cfg["split"])
    loaded: LoadResult = load_annotations(data_cfg["annotations"], known)
    rows, left_out = select_labels(loaded.rows, labels)
    check_label_counts(rows, labels, fractions, str(data_cfg["annotations"]))
    splits = split_rows(rows, fractions, int(data_cfg["split_seed"]))
    parts = {name: to_dataset(part, labels) for name, part in splits.items()}
    files = list(loaded.files)
    challenge_left_out: Counter = Counter()
    if data_cfg.get("challenge"):
        challenge = load_annotations(data_cfg["challenge"], known)
        challenge_rows, challenge_left_out = select_labels(challenge.rows, labels)
        leaked = {normalise_text(r.text) for r in rows} & {normalise_text(r.text) for r in challenge_rows}
        if leaked:
            example = sorted(leaked)[0]
            where = f"{data_cfg['challenge']}: {len(leaked)} challenge sentence(s)"
            raise AnnotationError([f"{where} also in the training annotations, e.g. {example!r}; remove them from one side"])
        parts["challenge"] = to_dataset(challenge_rows, labels)
        files += challenge.files
    dataset = DatasetDict(parts)
    summary = {
        "labels": labels,
        "fingerprint": fingerprint(files, {k: data_cfg[k] for k in ("labels", "split", "split_seed")}),
        "files": [str(f) for f in files],
        "rows_loaded": len(loaded.rows) + loaded.duplicates_dropped,
        "duplicates_dropped": loaded.duplicates_dropped,
        "left_out_by_label": dict(left_out),
        "challenge_left_out_by_label": dict(challenge_left_out),
        "counts": label_table(dataset),
    }
    return dataset, summary


def current_fingerprint(data_cfg: Mapping) -> str:
    """Fingerprint of the annotations as they are now, without loading them."""
    files = annotation_files(data_cfg["annotations"])
    if data_cfg.get("challenge"):
        files += annotation_files(data_cfg["challenge"])
    return fingerprint(files, {k: data_cfg[k] for k in ("labels", "split", "split_seed")})


def save_atomically(dataset: DatasetDict, summary: Mapping, output_dir: Path) -> None:
    """Save through a staging folder: no half-written dataset is ever visible."""
    with staged_folder(output_dir) as staging:
        disable_progress_bars()  # one line per shard and split is noise here
        dataset.save_to_disk(str(staging))
        enable_progress_bars()
        (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def prepare_dataset(data_cfg: Mapping, rebuild: bool = False) -> DatasetDict:
    """The saved dataset if it matches the annotations, else a freshly built and saved one.

    Disk-backed, so later ``map()`` calls cache beside it; ``data.train_fraction`` < 1 trims the
    train split on load (the saved dataset stays whole).
    """
    output_dir = Path(data_cfg["output_dir"])
    summary_path = output_dir / SUMMARY_FILE
    stale = rebuild or not summary_path.exists()
    if not stale and json.loads(summary_path.read_text()).get("fingerprint") != current_fingerprint(data_cfg):
        log.info("Annotations changed since %s was built; rebuilding", output_dir)
        stale = True
    if stale:
        dataset, summary = build_dataset(data_cfg)
        save_atomically(dataset, summary, output_dir)
        report_summary(summary, output_dir)
    else:
        log.info("Reusing dataset at %s (annotations unchanged)", output_dir)
    dataset = load_from_disk(str(output_dir))
    dataset["train"] = subsample(dataset["train"], float(data_cfg.get("train_fraction", 1.0)), int(data_cfg["split_seed"]))
    return dataset


def report_summary(summary: Mapping, output_dir: Path) -> None:
    """Print what the build did: dropped duplicates, left-out labels, split x label table."""
    if summary["duplicates_dropped"]:
        log.info("Dropped %d exact duplicate row(s) (same text, same label).", summary["duplicates_dropped"])
    for key, what in (("left_out_by_label", "annotations"), ("challenge_left_out_by_label", "challenge set")):
        if summary[key]:
            parts = ", ".join(f"{n} {label}" for label, n in sorted(summary[key].items()))
            log.info("Left out of the %s (not in data.labels): %s", what, parts)
    log.info("%s", format_table(summary["counts"]))
    log.info("Dataset saved to %s", output_dir)


@exits_cleanly
def run(cfg) -> None:
    """``scripts/build_dataset.py``: build (or reuse) the dataset and print its table."""
    prepare_dataset(cfg.data, rebuild=bool(cfg.rebuild))
