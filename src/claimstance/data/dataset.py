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
from omegaconf import DictConfig, ListConfig, OmegaConf
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from claimstance.atomic import staged_folder
from claimstance.config import data_problems, raise_problems
from claimstance.data.annotations import Annotation, AnnotationError, LoadResult, annotation_files, load_annotations
from claimstance.data.corpus import normalise_text
from claimstance.tables import text_table

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


def _hold_out(rows: list[Annotation], share: float, seed: int, group_by: str | None) -> tuple[list, list]:
    """(rest, held out): about ``share`` of the rows, label-stratified, whole groups when ``group_by`` is set.

    Groups go through scikit-learn's ``StratifiedGroupKFold`` (one fold held out), which keeps every
    document or pair whole and balances labels as far as the groups allow.
    """
    labels = [row.label for row in rows]
    if group_by is None:
        n_held = max(1, round(share * len(rows)))
        rest, held = train_test_split(rows, test_size=n_held, stratify=labels, random_state=seed)
        return rest, held
    groups = [row.group(group_by) for row in rows]
    folds = max(2, round(1 / share))
    if folds > len(set(groups)):
        raise AnnotationError(
            [f"only {len(set(groups))} {group_by} group(s); a grouped split holding out {share:.0%} needs {folds}"]
        )
    rest_index, held_index = next(
        StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(rows, labels, groups)
    )
    return [rows[i] for i in rest_index], [rows[i] for i in held_index]


def split_rows(
    rows: Sequence[Annotation], fractions: Mapping[str, float], seed: int, group_by: str | None = None
) -> dict[str, list[Annotation]]:
    """Seeded split into train / (validation) / test: test first, then validation from the rest."""
    rest, test = _hold_out(list(rows), fractions["test"], seed, group_by)
    parts = {"test": test}
    if fractions.get("validation", 0) > 0:
        rest, parts["validation"] = _hold_out(rest, fractions["validation"] / (1 - fractions["test"]), seed, group_by)
    parts["train"] = rest
    return {name: parts[name] for name in SPLITS if name in parts}


def split_off_field(
    rows: Sequence[Annotation], field: str, fractions: Mapping[str, float], seed: int, group_by: str | None
) -> dict[str, list[Annotation]]:
    """Leave one field out: every row of ``field`` is the test part; train and validation come from the other fields."""
    test = [row for row in rows if row.domain == field]
    if not test:
        fields = ", ".join(sorted({row.domain for row in rows}))
        raise AnnotationError([f"data.hold_out_field={field}: no sentence in that field; the fields are {fields}"])
    rest = [row for row in rows if row.domain != field]
    share = fractions["validation"] / (fractions["train"] + fractions["validation"])
    train, validation = _hold_out(rest, share, seed, group_by)
    return {"train": train, "validation": validation, "test": test}


def check_groups(rows: Sequence[Annotation], group_by: str | None, where: str) -> None:
    """A grouped split needs the group field on every row: say which rows lack it."""
    if group_by is None:
        return
    lacking = [row.where for row in rows if getattr(row, group_by) is None]
    if lacking:
        more = f" (and {len(lacking) - 3} more)" if len(lacking) > 3 else ""
        raise AnnotationError(
            [
                f"{where}: group_by={group_by} but {len(lacking)} row(s) have no '{group_by}' field, "
                f"e.g. {', '.join(lacking[:3])}{more}"
            ]
        )


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
            "group": Value("string"),
            "corpus": Value("string"),
        }
    )


def to_dataset(rows: Sequence[tuple[str, str | None, Annotation]], labels: Sequence[str]) -> Dataset:
    """``(corpus, group_by, row)`` triples -> ``Dataset`` with ``ClassLabel`` labels in config order.

    ``group`` (document, pair or the sentence id) travels along for grouped bootstrap and pair scores.
    """
    columns = {name: [getattr(row, name) for _, _, row in rows] for name in ("id", "text", "domain", "source")}
    columns["label"] = [labels.index(row.label) for _, _, row in rows]
    columns["group"] = [row.group(group_by) for _, group_by, row in rows]
    columns["corpus"] = [corpus for corpus, _, _ in rows]
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
    return text_table(["split", *columns], [[split, *(row[c] for c in columns)] for split, row in table.items()])


def fingerprint(files: Sequence[Path], settings: Mapping) -> str:
    """Hash of the annotation bytes and split settings; a change makes the saved dataset stale."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# the config values the saved dataset depends on (a change rebuilds it)
SETTINGS = ("labels", "split", "split_seed", "group_by", "extra", "train_on", "hold_out_field")


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


def _leaks(train: Sequence[Annotation], evaluated: Mapping[str, Sequence[Annotation]]) -> list[str]:
    """Evaluation sentences whose text is also trained on (a leak makes scores meaningless)."""
    seen = {normalise_text(row.text): row for row in train}
    problems = []
    for split, rows in evaluated.items():
        both = [(row, seen[normalise_text(row.text)]) for row in rows if normalise_text(row.text) in seen]
        if both:
            row, twin = both[0]
            also = "also in the corpora" if split == "challenge" else "also trained on"
            problems.append(
                f"{row.where}: {len(both)} {split} sentence(s) {also}, e.g. {row.text!r} (also {twin.where}); remove one"
            )
    return problems


def build_dataset(data_cfg: Mapping) -> tuple[DatasetDict, dict]:
    """Load, validate, filter and split every corpus; returns the dataset and its summary. No files written.

    The primary corpus gives train, validation and test (held-out documents, the headline); each extra
    corpus is split on its own, its train part joins training when ``data.train_on`` names it and its
    test part is always evaluated as ``<name>_test``.
    """
    raise_problems(data_problems(data_cfg))
    labels = list(data_cfg["labels"])
    known = list(data_cfg["known_labels"])
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
    leaks = _leaks(trained, evaluated) + _leaks(every_row, {"challenge": challenge_rows})  # the challenge set stands apart
    if leaks:
        raise AnnotationError(leaks)
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


def settings_of(data_cfg: Mapping) -> dict:
    """The config values the split depends on, as plain data."""
    return {
        key: OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
        for key, value in ((k, data_cfg.get(k)) for k in SETTINGS)
    }


def current_fingerprint(data_cfg: Mapping) -> str:
    """Fingerprint of the annotations as they are now, without loading them."""
    files = [path for spec in corpus_specs(data_cfg).values() for path in annotation_files(spec["path"])]
    if data_cfg.get("challenge"):
        files += annotation_files(data_cfg["challenge"])
    return fingerprint(files, settings_of(data_cfg))


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
