"""Any table in (``data=table``): a CSV, TSV, JSON lines, JSON or parquet file, a folder of them, or a saved dataset.

Files are read through ``datasets.load_dataset`` (its Arrow copy goes to a temporary folder, dropped after) and a
``save_to_disk`` folder through ``load_from_disk``; each row becomes an :class:`Annotation` and goes through the same
stratified, grouped, leak-checked split as the project's corpora (:mod:`claimstance.data.splits`). Every problem
names the file, the 1-based data row (after a CSV header) and the column; all are raised together, before any save.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import ClassLabel, DatasetDict, Features, Value, load_dataset, load_from_disk
from datasets.exceptions import DatasetGenerationError

from claimstance.config import TABLE_FIELDS, data_problems, raise_problems
from claimstance.data.annotations import Annotation, AnnotationError
from claimstance.data.dataset import fingerprint, quiet_datasets, settings_of
from claimstance.data.splits import (
    SPLITS,
    check_label_counts,
    folds_for,
    format_table,
    label_table,
    leaks,
    select_labels,
    split_rows,
    to_dataset,
)
from claimstance.data.textio import read_jsonl

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".jsonl": ("json", None),
    ".json": ("json", None),
    ".parquet": ("parquet", None),
}
SPLIT_NAMES = {"train": "train", "validation": "validation", "test": "test", "dev": "validation", "val": "validation"}
SETTINGS = ("path", *TABLE_FIELDS, "labels", "split", "split_seed", "challenge")  # a change rebuilds the dataset
SHOWN = 20  # problems listed in one message; the rest are counted
Record = tuple[str, str, dict]  # (where: "file row N", default id, the row's columns)


def saved_dataset(folder: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def table_inputs(path: str | Path) -> list[Path]:
    """The files under ``path`` (or the one saved-dataset folder); an unsupported or missing path is an error."""
    path = Path(path)
    kinds = ", ".join(FORMATS)
    if path.is_dir():
        if saved_dataset(path):
            return [path]
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
        if not files:
            raise AnnotationError([f"{path}: folder holds no {kinds} file and is not a saved dataset (save_to_disk)"])
        return files
    if not path.is_file():
        raise AnnotationError([f"{path}: no such file or folder"])
    if path.suffix.lower() not in FORMATS:
        raise AnnotationError(
            [f"{path}: unsupported file type '{path.suffix}'; use {kinds}, a folder of them or a saved dataset"]
        )
    return [path]


def _saved_records(folder: Path) -> list[Record]:
    """Rows of a saved ``Dataset`` or every split of a ``DatasetDict`` (its split name in column ``split``)."""
    loaded = load_from_disk(str(folder))
    parts = loaded.items() if isinstance(loaded, DatasetDict) else [(None, loaded)]
    records = []
    for split, part in parts:
        names = {col: f.names for col, f in part.features.items() if isinstance(f, ClassLabel)}  # ids -> label names
        for number, row in enumerate(part.to_list(), 1):
            row = {col: (names[col][v] if v is not None and v >= 0 else None) if col in names else v for col, v in row.items()}
            if split is not None:
                row.setdefault("split", split)
            where = f"{folder} [{split}] row {number}" if split else f"{folder} row {number}"
            records.append((where, f"{split or folder.name}:{number}", row))
    return records


def _csv_options(source: Path, delimiter: str) -> dict:
    """Every column read as text ("007" and "NA" stay as written; only an empty cell is missing)."""
    with source.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle, delimiter=delimiter), [])
    features = Features({name: Value("string") for name in header}) if len(set(header)) == len(header) else None
    return {"delimiter": delimiter, "features": features, "keep_default_na": False, "na_values": [""]}


def read_records(source: Path) -> list[Record]:
    """Every row of one file or saved folder, through ``datasets``; a file it cannot read is one problem."""
    with quiet_datasets():
        try:
            if source.is_dir():
                return _saved_records(source)
            builder, delimiter = FORMATS[source.suffix.lower()]
            options = _csv_options(source, delimiter) if delimiter else {}
            with tempfile.TemporaryDirectory() as cache:  # datasets' Arrow copy of the file is dropped after reading
                rows = load_dataset(builder, data_files=[str(source)], split="train", cache_dir=cache, **options).to_list()
            return [(f"{source} row {n}", f"{source.name}:{n}", row) for n, row in enumerate(rows, 1)]
        except (ValueError, OSError, DatasetGenerationError) as err:  # pandas, pyarrow, json, bad bytes, or those wrapped
            named = read_jsonl(source)[1] if source.suffix.lower() == ".jsonl" else []  # file:line of the bad line
            if named:
                raise AnnotationError(named) from err
            cause = err.__cause__ if isinstance(err, DatasetGenerationError) and err.__cause__ else err
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
            raise AnnotationError([f"{source}: cannot be read as a table ({type(cause).__name__}: {reason})"]) from err


def _raise(problems: Sequence[str]) -> None:
    """One :class:`AnnotationError` with the first problems and a count of the rest, if there are any."""
    if problems:
        more = [f"... and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else []
        raise AnnotationError([*problems[:SHOWN], *more])


def _text(record: Mapping, column: str, where: str, what: str, problems: list[str]) -> str | None:
    """A non-empty cell as text (numbers become text, names are stripped); missing, empty or not text is a problem."""
    value = record.get(column)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        got = "is empty" if value is None or isinstance(value, str) else f"must be text, got {type(value).__name__} {value!r}"
        problems.append(f"{where}, column '{column}': {what} {got}")
        return None
    return value if what in ("text", "text pair") else value.strip()


def to_rows(records: Sequence[Record], fields: Mapping, source: Path) -> tuple[list[tuple[Annotation, str | None]], list[str]]:
    """(row, given split or None) for each valid record, and the problems of the others."""
    fields = {key: name for key, name in fields.items() if name}
    columns = {column for _, _, record in records for column in record}
    missing = [f"{source}: no column '{name}' (data.{key})" for key, name in fields.items() if name not in columns]
    if not records:
        return [], [f"{source}: no rows"]
    if missing:
        return [], [f"{problem}; the columns are {', '.join(sorted(columns))}" for problem in missing]
    rows, problems = [], []
    for where, default_id, record in records:
        before = len(problems)
        text = _text(record, fields["text_field"], where, "text", problems)
        label = _text(record, fields["label_field"], where, "label", problems)
        named = {
            key: _text(record, name, where, key.removesuffix("_field").replace("_", " "), problems)
            for key, name in fields.items()
            if key not in ("text_field", "label_field")
        }
        split = None
        if "split_field" in fields and named["split_field"] is not None:
            split = SPLIT_NAMES.get(named["split_field"].casefold())
            if split is None:
                problems.append(
                    f"{where}, column '{fields['split_field']}': unknown split {named['split_field']!r}; "
                    "use train, validation or test (dev and val mean validation)"
                )
        if len(problems) == before:
            row = Annotation(
                id=named.get("id_field") or default_id,
                text=text,
                label=label,
                source=source.name,
                domain=source.stem,
                where=where,
                doc=named.get("group_field"),
                text_pair=named.get("text_pair_field"),
            )
            rows.append((row, split))
    return rows, problems


def _duplicates(rows: Sequence[tuple[Annotation, str | None]], fields: Mapping) -> tuple[list, list[str], int]:
    """Repeated ids and one text under two labels are problems; an exact repeat (same split) is kept once and counted."""
    first_id: dict[str, Annotation] = {}
    first_text: dict[tuple, Annotation] = {}
    kept, problems, dropped = [], [], 0
    id_column = fields.get("id_field")
    for row, split in rows:
        if id_column and row.id in first_id:
            problems.append(f"{row.where}, column '{id_column}': duplicate id {row.id!r} (also {first_id[row.id].where})")
            continue
        first_id[row.id] = row
        earlier = first_text.setdefault((row.key(), split), row)
        if earlier is row:
            kept.append((row, split))
        elif earlier.label != row.label:
            problems.append(
                f"{row.where}, column '{fields['label_field']}': same text as {earlier.where} but labelled "
                f"{row.label!r} here and {earlier.label!r} there; keep one row with the right label"
            )
        else:
            dropped += 1
    return kept, problems, dropped


def _given_split(rows: Sequence[tuple[Annotation, str | None]], labels: Sequence[str], data_cfg: Mapping, where: str) -> dict:
    """The user's own split column: every split present, every label trained on, no group in two splits."""
    column = data_cfg["split_field"]
    parts = {name: [row for row, split in rows if split == name] for name in SPLITS}
    problems = [
        f"{where}, column '{column}': no {name} rows; the split needs train, validation and test"
        for name in SPLITS
        if not parts[name]
    ]
    trained = {row.label for row in parts["train"]}
    every = {row.label for row, _ in rows}
    for label in labels:
        if label not in every:
            problems.append(f"{where}, column '{data_cfg['label_field']}': label '{label}' is in data.labels but no row has it")
        elif label not in trained:
            problems.append(f"{where}, column '{column}': label '{label}' has no train rows, so the model cannot learn it")
    if data_cfg.get("group_field"):
        home: dict[str, tuple[str | None, Annotation]] = {}
        for row, split in rows:
            first_split, first = home.setdefault(row.doc, (split, row))
            if first_split != split and first is not None:
                problems.append(
                    f"{row.where}, column '{data_cfg['group_field']}': group {row.doc!r} is in {split} here but in "
                    f"{first_split} at {first.where}; a group stays in one split"
                )
                home[row.doc] = (first_split, None)  # one message per group
    _raise(problems)
    return parts


def _made_split(rows: list[Annotation], labels: Sequence[str], data_cfg: Mapping, where: str) -> dict:
    """Stratified by label (and grouped by ``group_field``) with ``data.split`` fractions and ``data.split_seed``."""
    fractions = dict(data_cfg["split"])
    check_label_counts(rows, labels, fractions, f"{where}, column '{data_cfg['label_field']}'")
    group_by = "doc" if data_cfg.get("group_field") else None
    if group_by:
        groups = len({row.doc for row in rows})
        needed = folds_for(min(fractions["test"], fractions["validation"] / (1 - fractions["test"])))
        if groups < needed:
            raise AnnotationError(
                [f"{where}, column '{data_cfg['group_field']}': {groups} group(s); a grouped split of {fractions} needs {needed}"]
            )
    parts = split_rows(rows, fractions, int(data_cfg["split_seed"]), group_by)
    for name, part in parts.items():
        absent = sorted(set(labels) - {row.label for row in part})
        if absent:  # groups can make a label miss a split: its scores there are undefined, so say so
            log.warning("The %s split has no %s row: its groups hold them all elsewhere", name, ", ".join(absent))
    return parts


def _files(inputs: Sequence[Path]) -> list[Path]:
    """Every file whose bytes the dataset depends on (all of a saved folder)."""
    return [f for source in inputs for f in (sorted(source.rglob("*")) if source.is_dir() else [source]) if f.is_file()]


def _read(path: str | Path, fields: Mapping) -> tuple[list[tuple[Annotation, str | None]], list[Path], int]:
    """Valid rows of every file under ``path``, the files read, and the exact repeats dropped; all problems at once."""
    inputs = table_inputs(path)
    rows, problems = [], []
    for source in inputs:
        found, source_problems = to_rows(read_records(source), fields, source)
        rows += found
        problems += source_problems
    rows, duplicate_problems, dropped = _duplicates(rows, fields)
    _raise(problems + duplicate_problems)
    return rows, _files(inputs), dropped


class Table:
    """``data=table``: the :class:`claimstance.data.dataset.DataSource` for a user's own table."""

    def build(self, data_cfg: Mapping) -> tuple[DatasetDict, dict]:
        """Read, validate and split ``data.path`` (and ``data.challenge``); nothing of the project's corpora is mixed in."""
        raise_problems(data_problems(data_cfg))
        where = str(data_cfg["path"])
        fields = {key: data_cfg.get(key) for key in TABLE_FIELDS}
        given, files, dropped = _read(where, fields)
        labels = [str(label) for label in data_cfg.get("labels") or sorted({row.label for row, _ in given})]  # 0/1 as read
        if len(labels) < 2:
            raise AnnotationError(
                [f"{where}, column '{data_cfg['label_field']}': only label(s) {labels}; a classifier needs two"]
            )
        kept = [(row, split) for row, split in given if row.label in set(labels)]
        left_out = Counter(row.label for row, _ in given if row.label not in set(labels))
        if data_cfg.get("split_field"):
            parts = _given_split(kept, labels, data_cfg, where)
        else:
            parts = _made_split([row for row, _ in kept], labels, data_cfg, where)
        challenge_left_out: Counter = Counter()
        if data_cfg.get("challenge"):
            scored_only = fields | {"group_field": None, "split_field": None}  # a challenge file needs neither column
            challenge, challenge_files, _ = _read(data_cfg["challenge"], scored_only)
            parts["challenge"], challenge_left_out = select_labels([row for row, _ in challenge], labels)
            files += challenge_files
        problems = leaks(parts["train"], {"validation": parts["validation"], "test": parts["test"]})
        problems += leaks(parts["validation"], {"test": parts["test"]})
        every = parts["train"] + parts["validation"] + parts["test"]
        _raise(problems + leaks(every, {"challenge": parts.get("challenge", [])}))
        group_by = "doc" if data_cfg.get("group_field") else None
        name = Path(where).stem
        pairs = bool(data_cfg.get("text_pair_field"))
        dataset = DatasetDict(
            {split: to_dataset([(name, group_by, row) for row in rows], labels, pairs) for split, rows in parts.items()}
        )
        summary = {
            "labels": labels,
            "fingerprint": fingerprint(files, settings_of(data_cfg, SETTINGS)),
            "files": [str(f) for f in files],
            "table": {
                "path": where,
                "rows_read": len(given) + dropped,
                "duplicates_dropped": dropped,
                "left_out_by_label": dict(left_out),
                "challenge_left_out_by_label": dict(challenge_left_out),
                "split_by": data_cfg.get("split_field") or "stratified split",
                "grouped_by": data_cfg.get("group_field"),
            },
            "counts": label_table(dataset),
        }
        return dataset, summary

    def fingerprint(self, data_cfg: Mapping) -> str:
        """The files' bytes and the settings, without reading the rows."""
        paths = [data_cfg["path"]] + ([data_cfg["challenge"]] if data_cfg.get("challenge") else [])
        return fingerprint(_files([source for path in paths for source in table_inputs(path)]), settings_of(data_cfg, SETTINGS))

    def report(self, summary: Mapping, output_dir: Path) -> None:
        """Log rows read, repeats dropped, labels left out and the split x label table."""
        table = summary["table"]
        log.info(
            "Table %s: %d rows, labels %s, split by %s", table["path"], table["rows_read"], summary["labels"], table["split_by"]
        )
        if table["duplicates_dropped"]:
            log.info("Dropped %d exact duplicate row(s) (same text, same label).", table["duplicates_dropped"])
        for what, key in (("table", "left_out_by_label"), ("challenge set", "challenge_left_out_by_label")):
            if table[key]:
                counts = ", ".join(f"{n} {label}" for label, n in sorted(table[key].items()))
                log.info("Left out of the %s (not in data.labels): %s", what, counts)
        log.info("%s", format_table(summary["counts"]))
        log.info("Dataset saved to %s", output_dir)
