"""Read and validate annotated sentences (``*.jsonl``) before anything trains on them.

Every problem in every file is collected and reported together as ``file:line: problem``;
loading either returns clean rows or raises :class:`AnnotationError` with all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from claimstance.data.corpus import normalise_text
from claimstance.data.textio import read_jsonl
from claimstance.errors import UserError

REQUIRED_FIELDS = ("id", "text", "label", "source", "domain")
OPTIONAL_FIELDS = ("speaker", "target", "note", "doc", "pair", "edit")
INTEGER_FIELDS = ("position",)  # a sentence's 1-based place in its document


class AnnotationError(UserError, ValueError):
    """All problems found in the annotation files, one ``file:line: problem`` per line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the annotations:"
        super().__init__("\n".join([header, *self.problems]))


@dataclass(frozen=True)
class Annotation:
    """One validated sentence; ``where`` is its ``file:line`` for later messages."""

    id: str
    text: str
    label: str
    source: str
    domain: str
    where: str
    speaker: str | None = None
    target: str | None = None
    note: str | None = None
    doc: str | None = None
    pair: str | None = None
    edit: str | None = None
    position: int | None = None
    text_pair: str | None = None  # a second segment (stance target, question, context): tables only

    def key(self) -> str:
        """What makes two rows the same sentence: the normalised text, and the text pair when there is one."""
        text = normalise_text(self.text)
        return text if self.text_pair is None else f"{text}\x00{normalise_text(self.text_pair)}"

    def group(self, key: str | None) -> str:
        """The unit a grouped split keeps whole: ``doc`` or ``pair`` when ``key`` names one, else the sentence itself."""
        value = getattr(self, key) if key else None
        return value if value is not None else self.id


@dataclass
class LoadResult:
    """Clean rows plus what loading did to the input, for the printed summary."""

    rows: list[Annotation]
    files: list[Path]
    duplicates_dropped: int = 0
    duplicate_examples: list[str] = field(default_factory=list)


def known_labels(data_cfg: Mapping) -> list[str]:
    """Every label an annotation may carry: the keys of ``data.descriptions``, where each is declared once.

    A ``data=table`` config may leave descriptions out: then its listed ``data.labels`` (empty when inferred).
    """
    return list(data_cfg.get("descriptions") or data_cfg.get("labels") or [])


def annotation_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted list of ``*.jsonl`` files.

    A missing path or a folder without ``*.jsonl`` files is an error, not an empty corpus.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    problems = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                problems.append(f"{path}: folder holds no *.jsonl annotation files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    if problems:
        raise AnnotationError(problems)
    return files


def _parse_record(record: dict, where: str, known_labels: Sequence[str]) -> tuple[Annotation | None, list[str]]:
    """Validate one JSON object; return the row or the problems found in it."""
    problems = []
    for name in REQUIRED_FIELDS:
        if name not in record:
            problems.append(f"{where}: missing required field '{name}'")
        elif not isinstance(record[name], str):
            problems.append(f"{where}: field '{name}' must be a string, got {type(record[name]).__name__} {record[name]!r}")
        elif not record[name].strip():
            problems.append(f"{where}: field '{name}' is empty or whitespace")
    for name in OPTIONAL_FIELDS:
        if record.get(name) is not None and not isinstance(record[name], str):
            problems.append(f"{where}: optional field '{name}' must be a string or absent")
    for name in INTEGER_FIELDS:
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(f"{where}: optional field '{name}' must be a whole number >= 1, got {value!r}")
    allowed = REQUIRED_FIELDS + OPTIONAL_FIELDS + INTEGER_FIELDS
    unknown = sorted(set(record) - set(allowed))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    label = record.get("label")
    if isinstance(label, str) and label.strip() and label not in known_labels:
        hint = next((k for k in known_labels if k == label.strip().casefold()), None)
        fix = f"write '{hint}' (labels are lower case)" if hint else f"use one of {', '.join(known_labels)}"
        problems.append(f"{where}: unknown label {label!r}; {fix}")
    if problems:
        return None, problems
    optional = {k: record.get(k) for k in OPTIONAL_FIELDS + INTEGER_FIELDS}
    return Annotation(where=where, **{k: record[k] for k in REQUIRED_FIELDS}, **optional), []


def load_annotations(paths: str | Path | Iterable[str | Path], known_labels: Sequence[str]) -> LoadResult:
    """Load every ``*.jsonl`` under ``paths`` and validate all rows together.

    Checks malformed JSON, missing or mistyped fields, empty text, unknown labels, duplicate ids
    (across files too) and the same normalised text under two labels. Exact duplicates (same
    normalised text, same label) are kept once and counted.
    """
    files = annotation_files(paths)
    problems: list[str] = []
    rows: list[Annotation] = []
    for path in files:
        records, read_problems = read_jsonl(path)
        problems.extend(read_problems)
        if not records and not read_problems:
            problems.append(f"{path}: file is empty; add one JSON object per line or remove the file")
        for number, record in records:
            row, row_problems = _parse_record(record, f"{path}:{number}", known_labels)
            problems.extend(row_problems)
            if row:
                rows.append(row)

    first_by_id: dict[str, Annotation] = {}
    first_by_text: dict[str, Annotation] = {}
    kept: list[Annotation] = []
    dropped: list[str] = []
    for row in rows:
        if row.id in first_by_id:
            problems.append(f"{row.where}: duplicate id '{row.id}' (first used at {first_by_id[row.id].where})")
            continue
        first_by_id[row.id] = row
        key = row.key()
        earlier = first_by_text.get(key)
        if earlier is None:
            first_by_text[key] = row
            kept.append(row)
        elif earlier.label != row.label:
            problems.append(
                f"{row.where}: same text as {earlier.where} but labelled '{row.label}' here and '{earlier.label}' there; "
                "keep one row with the right label"
            )
        else:
            dropped.append(f"{row.where} repeats {earlier.where}")
    if problems:
        raise AnnotationError(problems)
    return LoadResult(rows=kept, files=files, duplicates_dropped=len(dropped), duplicate_examples=dropped[:5])
