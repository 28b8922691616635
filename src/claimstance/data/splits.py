"""Seeded, label-stratified splits of validated rows, and the ``Dataset`` columns every reader downstream expects.

Shared by every data source (the project's corpora in :mod:`claimstance.data.dataset`, any table in
:mod:`claimstance.data.table`): a source turns its input into :class:`Annotation` rows, these functions do the rest.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from claimstance.data.annotations import Annotation, AnnotationError
from claimstance.tables import text_table

SPLITS = ("train", "validation", "test")


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


def folds_for(share: float) -> int:
    """Folds of a grouped split that holds out about ``share`` (one fold held out)."""
    return max(2, round(1 / share))


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
    folds = folds_for(share)
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


def read_pinned(path: str | Path | None) -> dict[str, str]:
    """``{group: part}`` from a JSON file of ``{"train": [...], "validation": [...], "test": [...]}``; empty if there is none.

    A corpus folder ships its pinned split beside its files, as a published dataset ships its splits; a corpus
    without one (a user's own documents) is split by the seed.
    """
    if not path or not Path(path).is_file():
        return {}
    try:
        listed = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AnnotationError([f"{path}: cannot read the pinned split ({err})"]) from err
    if not isinstance(listed, dict) or set(listed) - set(SPLITS) or not all(isinstance(v, list) for v in listed.values()):
        raise AnnotationError([f"{path}: a pinned split is a JSON object of lists named {', '.join(SPLITS)}"])
    pinned: dict[str, str] = {}
    for part, groups in listed.items():
        for group in groups:
            if group in pinned:
                raise AnnotationError([f"{path}: group {group!r} is listed under both {pinned[group]} and {part}"])
            pinned[str(group)] = part
    return pinned


def split_pinned(
    rows: Sequence[Annotation], pinned: Mapping[str, str], fractions: Mapping[str, float], seed: int, group_by: str | None
) -> dict[str, list[Annotation]]:
    """Groups listed in ``pinned`` keep their part whatever their labels become; the others are split by ``split_rows``.

    A stratified split moves documents between parts when a label changes; pinning keeps the held-out documents
    held out across relabelling, so scores before and after stay comparable.
    """
    parts: dict[str, list[Annotation]] = {name: [] for name in SPLITS}
    unlisted = []
    for row in rows:
        part = pinned.get(row.group(group_by))
        (parts[part] if part else unlisted).append(row)
    if unlisted:
        for part, new in split_rows(unlisted, fractions, seed, group_by).items():
            parts[part] += new
    return {name: parts[name] for name in SPLITS if name in fractions}


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


def leaks(train: Sequence[Annotation], evaluated: Mapping[str, Sequence[Annotation]]) -> list[str]:
    """Evaluation sentences whose text (and text pair) is also trained on (a leak makes scores meaningless)."""
    seen = {row.key(): row for row in train}
    problems = []
    for split, rows in evaluated.items():
        both = [(row, seen[row.key()]) for row in rows if row.key() in seen]
        if both:
            row, twin = both[0]
            also = "also in the corpora" if split == "challenge" else "also trained on"
            problems.append(
                f"{row.where}: {len(both)} {split} sentence(s) {also}, e.g. {row.text!r} (also {twin.where}); remove one"
            )
    return problems


def subsample(train: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded, label-stratified share of the training split (for learning curves); 0 < fraction <= 1."""
    if fraction == 1:
        return train
    return train.train_test_split(train_size=fraction, stratify_by_column="label", seed=seed)["train"]


def features_for(labels: Sequence[str], text_pair: bool = False) -> Features:
    """Column types: the label is a ``ClassLabel`` so names travel with the data; ``text_pair`` only for pair data."""
    columns = {
        "id": Value("string"),
        "text": Value("string"),
        "label": ClassLabel(names=list(labels)),
        "domain": Value("string"),
        "source": Value("string"),
        "group": Value("string"),
        "corpus": Value("string"),
    }
    if text_pair:
        columns["text_pair"] = Value("string")
    return Features(columns)


def to_dataset(rows: Sequence[tuple[str, str | None, Annotation]], labels: Sequence[str], text_pair: bool = False) -> Dataset:
    """``(corpus, group_by, row)`` triples -> ``Dataset`` with ``ClassLabel`` labels in config order.

    ``group`` (document, pair or the sentence id) travels along for grouped bootstrap and pair scores.
    """
    names = ("id", "text", "domain", "source", "text_pair") if text_pair else ("id", "text", "domain", "source")
    columns = {name: [getattr(row, name) for _, _, row in rows] for name in names}
    columns["label"] = [labels.index(row.label) for _, _, row in rows]
    columns["group"] = [row.group(group_by) for _, group_by, row in rows]
    columns["corpus"] = [corpus for corpus, _, _ in rows]
    return Dataset.from_dict(columns, features=features_for(labels, text_pair))


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
