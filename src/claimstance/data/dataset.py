"""The data stage's one entry, :func:`prepare_dataset`: validated rows -> a seeded, stratified ``DatasetDict`` on disk.

``data.source._target_`` picks the reader (a :class:`DataSource`): :class:`ProjectCorpora` here for the project's
JSONL corpora, :class:`claimstance.data.table.Table` for any table. :func:`prepare_dataset` owns the side effects:
staleness check, atomic save and the printed table; the splitting itself is in :mod:`claimstance.data.splits`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import datasets
from datasets import DatasetDict, load_from_disk
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from claimstance.atomic import staged_folder
from claimstance.config import data_problems, raise_problems
from claimstance.data.annotations import AnnotationError, LoadResult, annotation_files, load_annotations
from claimstance.data.splits import (
    check_groups,
    check_label_counts,
    format_table,
    label_table,
    leaks,
    read_pinned,
    select_labels,
    split_off_field,
    split_pinned,
    split_rows,
    subsample,
    to_dataset,
)

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


class DataSource(Protocol):
    """What ``data.source._target_`` builds: reads one data option's input into a ``DatasetDict``."""

    def build(self, data_cfg: Mapping) -> tuple[DatasetDict, dict]:
        """Validate and split; the dataset and its summary (``labels``, ``fingerprint``, ``counts`` ...). No files written."""

    def fingerprint(self, data_cfg: Mapping) -> str:
        """Hash of the input as it is now and of the settings: a change makes the saved dataset stale."""

    def report(self, summary: Mapping, output_dir: Path) -> None:
        """Log what the build did."""


class ProjectCorpora:
    """``data=default`` / ``data=sentences``: the project's JSONL corpora (primary, extra, challenge)."""

    def build(self, data_cfg: Mapping) -> tuple[DatasetDict, dict]:
        return build_dataset(data_cfg)

    def fingerprint(self, data_cfg: Mapping) -> str:
        return current_fingerprint(data_cfg)

    def report(self, summary: Mapping, output_dir: Path) -> None:
        report_summary(summary, output_dir)


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bars or log lines from ``datasets`` inside: one line per shard is noise, and a reader's error is
    raised again by the caller as a message that names the file."""
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        datasets.enable_progress_bars()


def fingerprint(files: Sequence[Path], settings: Mapping) -> str:
    """Hash of the annotation bytes and split settings; a change makes the saved dataset stale."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# the config values the saved dataset depends on (a change rebuilds it)
SETTINGS = ("labels", "split", "split_seed", "group_by", "extra", "train_on", "hold_out_field", "pinned_split")


def corpus_specs(data_cfg: Mapping) -> dict[str, dict]:
    """Every corpus by name, primary first: ``{path, group_by, split, train}``."""
    primary = {
        "path": data_cfg["annotations"],
        "group_by": data_cfg.get("group_by"),
        "split": dict(data_cfg["split"]),
        "train": True,
    }
    specs = {Path(str(data_cfg["annotations"])).stem: primary}
    train_on = set(data_cfg.get("train_on") or [])
    for name, extra in (data_cfg.get("extra") or {}).items():
        specs[name] = {
            "path": extra["path"],
            "group_by": extra.get("group_by"),
            "split": dict(extra["split"]),
            "train": name in train_on,
        }
    return specs


def build_dataset(data_cfg: Mapping) -> tuple[DatasetDict, dict]:
    """Load, validate, filter and split every corpus; returns the dataset and its summary. No files written.

    The primary corpus gives train, validation and test (held-out documents, the headline); each extra
    corpus is split on its own, its train part joins training when ``data.train_on`` names it and its
    test part is always evaluated as ``<name>_test``.
    """
    raise_problems(data_problems(data_cfg))
    labels = list(data_cfg["labels"])
    known = list(data_cfg["descriptions"])  # every label an annotation may carry
    seed = int(data_cfg["split_seed"])
    parts: dict[str, list] = {"train": [], "validation": []}
    files: list[Path] = []
    corpora: dict[str, dict] = {}
    for index, (name, spec) in enumerate(corpus_specs(data_cfg).items()):
        primary = index == 0
        loaded: LoadResult = load_annotations(spec["path"], known)
        rows, left_out = select_labels(loaded.rows, labels)
        where = str(spec["path"])
        if primary:
            check_label_counts(rows, labels, spec["split"], where)
        check_groups(rows, spec["group_by"], where)
        if primary and data_cfg.get("hold_out_field"):
            split = split_off_field(rows, data_cfg["hold_out_field"], spec["split"], seed, spec["group_by"])
        elif primary and data_cfg.get("pinned_split"):
            pinned = read_pinned(data_cfg["pinned_split"])
            split = split_pinned(rows, pinned, spec["split"], seed, spec["group_by"])
            files += [Path(data_cfg["pinned_split"])] if pinned else []
        else:
            split = split_rows(rows, spec["split"], seed, spec["group_by"])
        tagged = {part: [(name, spec["group_by"], row) for row in part_rows] for part, part_rows in split.items()}
        if primary:
            parts["validation"] = tagged["validation"]
            parts["test"] = tagged["test"]
        else:
            parts[f"{name}_test"] = tagged["test"]
        if spec["train"]:
            parts["train"] += tagged["train"]
        files += loaded.files
        corpora[name] = {
            "path": where,
            "group_by": spec["group_by"],
            "trained_on": spec["train"],
            "rows_loaded": len(loaded.rows) + loaded.duplicates_dropped,
            "duplicates_dropped": loaded.duplicates_dropped,
            "left_out_by_label": dict(left_out),
            "groups": {part: len({row.group(spec["group_by"]) for row in part_rows}) for part, part_rows in split.items()},
        }
    challenge_left_out: Counter = Counter()
    if data_cfg.get("challenge"):
        challenge = load_annotations(data_cfg["challenge"], known)
        challenge_rows, challenge_left_out = select_labels(challenge.rows, labels)
        parts["challenge"] = [("challenge", None, row) for row in challenge_rows]
        files += challenge.files
    trained = [row for _, _, row in parts["train"] + parts["validation"]]
    evaluated = {split: [row for _, _, row in rows] for split, rows in parts.items() if split not in ("train", "validation")}
    challenge_rows = evaluated.pop("challenge", [])
    every_row = trained + [row for rows in evaluated.values() for row in rows]
    found = leaks(trained, evaluated) + leaks(every_row, {"challenge": challenge_rows})  # the challenge set stands apart
    if found:
        raise AnnotationError(found)
    dataset = DatasetDict({split: to_dataset(rows, labels) for split, rows in parts.items()})
    summary = {
        "labels": labels,
        "fingerprint": fingerprint(files, settings_of(data_cfg)),
        "files": [str(f) for f in files],
        "corpora": corpora,
        "challenge_left_out_by_label": dict(challenge_left_out),
        "counts": label_table(dataset),
    }
    return dataset, summary


def settings_of(data_cfg: Mapping, keys: Sequence[str] = SETTINGS) -> dict:
    """The config values the split depends on, as plain data."""
    return {
        key: OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
        for key, value in ((k, data_cfg.get(k)) for k in keys)
    }


def current_fingerprint(data_cfg: Mapping) -> str:
    """Fingerprint of the annotations as they are now, without loading them."""
    files = [path for spec in corpus_specs(data_cfg).values() for path in annotation_files(spec["path"])]
    if data_cfg.get("challenge"):
        files += annotation_files(data_cfg["challenge"])
    return fingerprint(files, settings_of(data_cfg))


def save_atomically(dataset: DatasetDict, summary: Mapping, output_dir: Path) -> None:
    """Save through a staging folder: no half-written dataset is ever visible."""
    with staged_folder(output_dir) as staging, quiet_datasets():
        dataset.save_to_disk(str(staging))
        (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def prepare_dataset(data_cfg: Mapping, rebuild: bool = False) -> DatasetDict:
    """The data stage's one entry: the saved dataset if it matches its input, else a freshly built and saved one.

    ``data.source._target_`` names the reader (:class:`DataSource`): the project's corpora or any table. The
    result always has the columns of :func:`claimstance.data.splits.features_for`, and the label names in
    ``dataset["train"].features["label"].names``. Disk-backed, so later ``map()`` calls cache beside it;
    ``data.train_fraction`` < 1 trims the train split on load (the saved dataset stays whole).
    """
    source: DataSource = instantiate(data_cfg["source"])
    output_dir = Path(data_cfg["output_dir"])
    summary_path = output_dir / SUMMARY_FILE
    stale = rebuild or not summary_path.exists()
    if not stale and json.loads(summary_path.read_text()).get("fingerprint") != source.fingerprint(data_cfg):
        log.info("Annotations changed since %s was built; rebuilding", output_dir)
        stale = True
    if stale:
        dataset, summary = source.build(data_cfg)
        save_atomically(dataset, summary, output_dir)
        source.report(summary, output_dir)
    else:
        log.info("Reusing dataset at %s (annotations unchanged)", output_dir)
    dataset = load_from_disk(str(output_dir))
    dataset["train"] = subsample(dataset["train"], float(data_cfg.get("train_fraction", 1.0)), int(data_cfg["split_seed"]))
    return dataset


def report_summary(summary: Mapping, output_dir: Path) -> None:
    """Print what the build did: corpora and their groups, dropped duplicates, left-out labels, split x label table."""
    left_out = {f"corpus {name}": corpus["left_out_by_label"] for name, corpus in summary["corpora"].items()}
    left_out["challenge set"] = summary["challenge_left_out_by_label"]
    for name, corpus in summary["corpora"].items():
        groups = ", ".join(f"{part} {n}" for part, n in corpus["groups"].items())
        use = "trained on" if corpus["trained_on"] else "evaluated only"
        log.info(
            "Corpus %s (%s, %s): %d rows; %s: %s",
            name,
            corpus["path"],
            use,
            corpus["rows_loaded"],
            corpus["group_by"] or "sentences",
            groups,
        )
        if corpus["duplicates_dropped"]:
            log.info("Dropped %d exact duplicate row(s) (same text, same label) from %s.", corpus["duplicates_dropped"], name)
    for what, counts in left_out.items():
        if counts:
            parts = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
            log.info("Left out of the %s (not in data.labels): %s", what, parts)
    log.info("%s", format_table(summary["counts"]))
    log.info("Dataset saved to %s", output_dir)
