"""Documents to tag: find the files ``input=`` names, read them as sentences or articles, and tag them in bounded chunks.

Every row keeps where it came from (document, paragraph, sentence, character offsets) and the input's own
fields, so a tagged row can be traced back to the exact text it labels.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path

from claimstance.data.textio import InputError, iter_jsonl, iter_lines, read_text
from claimstance.errors import ConfigError
from claimstance.inference.predictor import Predictor

TEXT_SUFFIXES = (".txt", ".text", ".md", ".jsonl")  # what a folder given as input= is searched for
INPUT_FORMATS = ("auto", "lines", "jsonl", "article")


@dataclass
class Document:
    """One input document: its name and its sentences, each a dict of position fields, passthrough fields and ``text``.

    ``model_texts`` are what the model reads (wrapped lines joined); ``rows[i]["text"]`` is the exact slice of the input.
    A row with a ``text_pair`` field is read as ``{"text", "text_pair"}``: the pair is the tokenizer's second segment.
    """

    name: str
    rows: list[dict] = field(default_factory=list)
    model_texts: list[str | dict] = field(default_factory=list)


@dataclass(frozen=True)
class FileError:
    """A file a batch skipped: which file, the line (None when the problem is the whole file) and what is wrong."""

    file: str
    line: int | None
    problem: str

    @classmethod
    def of(cls, path: Path, name: str, err: Exception) -> FileError:
        """Split an :class:`InputError` such as ``"news/b.txt:2: NUL byte"`` (or an ``OSError``) into its parts."""
        if isinstance(err, OSError):
            return cls(name, None, err.strerror or str(err))
        message = str(err)
        rest = message[len(str(path)) + 1 :] if message.startswith(f"{path}:") else message
        numbered = re.match(r"(\d+): (.*)", rest.strip(), re.DOTALL)
        if numbered:
            return cls(name, int(numbered.group(1)), numbered.group(2))
        return cls(name, None, rest.strip())

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}" if self.line is not None else f"{self.file}: {self.problem}"

    def as_row(self) -> dict:
        return asdict(self)


def is_batch(spec: str | Path) -> bool:
    """A folder or a glob: many files, where a bad one is skipped and reported rather than stopping the run."""
    return not Path(str(spec)).is_file() and (Path(str(spec)).is_dir() or glob.has_magic(str(spec)))


def input_files(spec: str | Path) -> list[Path]:
    """The files ``input=`` names: a file, a folder (its text files, recursively, hidden ones skipped) or a glob."""
    text = str(spec)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        texts = [p for p in found if p.suffix.lower() in TEXT_SUFFIXES]
        if not texts:
            others = f"; it holds {len(found)} other file(s), e.g. {found[0].name}" if found else "; it is empty"
            raise InputError(f"{path}: no text files ({', '.join(TEXT_SUFFIXES)}) in this folder{others}")
        return texts
    if glob.has_magic(text):
        matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not matched:
            raise InputError(f"{text}: the pattern matches no files")
        return matched
    raise InputError(f"{path}: input file does not exist")


def _format_of(path: Path, input_format: str) -> str:
    if input_format not in INPUT_FORMATS:
        raise ConfigError(f"input_format must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
    if input_format == "auto":
        return "jsonl" if path.suffix == ".jsonl" else "lines"
    return input_format


def _segmented(name: str, text: str, layout: str, extra: Mapping | None = None) -> Document:
    """A document from running text: sentences with paragraph, index, exact offsets and heading flag."""
    from claimstance.inference.articles import segment

    document = Document(name)
    for piece in segment(text, layout=layout):
        document.rows.append(
            {
                **(extra or {}),
                "doc": name,
                "paragraph": piece.paragraph,
                "sentence": piece.sentence,
                "start": piece.start,
                "end": piece.end,
                "heading": piece.heading,
                "text": piece.text,
            }
        )
        document.model_texts.append(piece.model_text)
    return document


def document_name(path: Path, spec: str | Path) -> str:
    """How rows name their file: relative to a folder given as ``input=``, else as found (a file's own name)."""
    root = Path(spec)
    if root.is_dir():
        return path.relative_to(root).as_posix()
    return path.name if root == path else str(path)


def read_documents(
    path: Path, input_format: str = "auto", layout: str = "paragraphs", name: str | None = None
) -> Iterator[Document]:
    """The documents of one file.

    ``lines`` and ``article`` files are one document each (``lines`` = one sentence per line); a ``.jsonl``
    file read as ``jsonl`` is one document of sentences (its rows' fields pass through), read as ``article``
    each row is a document named by its ``id``.
    """
    kind = _format_of(path, input_format)
    name = name or path.name
    if kind == "jsonl" or (kind == "article" and path.suffix == ".jsonl"):
        yield from record_documents(path, iter_jsonl(path), kind, layout, name)
        return
    document = _segmented(name, read_text(path), "lines" if kind == "lines" else layout)
    if not document.rows:
        raise InputError(f"{path}: no sentences in the file")
    yield document


def record_documents(
    source: str | Path, records: Iterable[tuple[int, dict]], kind: str, layout: str, name: str
) -> Iterator[Document]:
    """Documents from ``(line, record)`` rows of a JSON-lines (or parquet) file named ``source``.

    ``article``: each row is an article named by its ``id``; otherwise the rows are the sentences of one document.
    """
    if kind == "article":
        for number, record in records:
            text = _text_field(record, source, number)
            extra = {k: v for k, v in record.items() if k != "text"}
            document = _segmented(str(record.get("id", f"{name}:{number}")), text, layout, extra)
            pair = _pair_field(record, source, number)
            if pair is not None:
                document.model_texts = [{"text": t, "text_pair": pair} for t in document.model_texts]
            yield document
        return
    document = Document(name)
    for number, record in records:
        text = _text_field(record, source, number)
        document.rows.append({**record, "doc": record.get("doc", name), "sentence": len(document.rows), "line": number})
        pair = _pair_field(record, source, number)
        model_text = " ".join(text.split())
        document.model_texts.append(model_text if pair is None else {"text": model_text, "text_pair": pair})
    if not document.rows:
        raise InputError(f"{source}: no sentences in the file")
    yield document


def _text_field(record: Mapping, path: str | Path, number: int) -> str:
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{path}:{number}: needs a non-empty string field 'text'")
    return text


def _pair_field(record: Mapping, path: str | Path, number: int) -> str | None:
    """The row's ``text_pair`` (a stance target, a question, a context sentence), if it has one."""
    pair = record.get("text_pair")
    if pair is None:
        return None
    if not isinstance(pair, str) or not pair.strip():
        raise InputError(f"{path}:{number}: field 'text_pair' must be a non-empty string when given")
    return " ".join(pair.split())


def check_pairs(document: Document, path: str | Path, needs_pair: bool) -> Document:
    """``document`` if its rows match the model (pairs for a pair model, single sentences otherwise), else an InputError."""
    for row, model_input in zip(document.rows, document.model_texts, strict=True):
        if isinstance(model_input, dict) != needs_pair:
            where = f"{path}:{row['line']}" if "line" in row else f"{path} ({document.name})"
            fix = "each row needs a 'text_pair' field" if needs_pair else "drop the 'text_pair' field"
            trained = "text pairs" if needs_pair else "single sentences"
            raise InputError(f"{where}: this model was trained on {trained}; {fix}")
    return document


def read_file_documents(
    path: Path, input_format: str = "auto", layout: str = "paragraphs", name: str | None = None
) -> list[Document]:
    """Every document of one file, read to the end before any is used, so a bad line anywhere rejects the whole file.

    A batch skips a bad file whole: tagging the rows before its bad line would leave a half file in the output.
    """
    return list(read_documents(path, input_format, layout, name))


def read_inputs(path: str | Path, input_format: str = "auto") -> Iterator[str]:
    """Stream the sentences of one file as the model reads them, for callers that need no positions.

    ``lines`` files are read one line at a time (any size); ``jsonl`` and ``article`` go through
    :func:`read_documents`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: input file does not exist")
    kind = _format_of(path, input_format)
    if kind != "lines":
        for document in read_documents(path, kind):
            yield from document.model_texts
        return
    seen = False
    for _, line in iter_lines(path):
        if line.strip():
            seen = True
            yield line.strip()
    if not seen:
        raise InputError(f"{path}: no sentences in the file")


PREDICTION_KEYS = ("label", "score", "probabilities", "abstained")


def _merge(row: Mapping, prediction: Mapping) -> dict:
    """The input row with the prediction added; an input field named like a prediction key is kept as ``input_<key>``."""
    merged = {(f"input_{k}" if k in PREDICTION_KEYS else k): v for k, v in row.items()}
    return merged | {key: prediction[key] for key in PREDICTION_KEYS}


def model_inputs(texts: list[str | dict]) -> list[str] | list[dict]:
    """What one ``Predictor.predict`` call gets: plain sentences, or ``{"text"[, "text_pair"]}`` dicts once one has a pair."""
    if all(isinstance(text, str) for text in texts):
        return texts
    return [text if isinstance(text, dict) else {"text": text} for text in texts]


def tag_documents(
    predictor: Predictor, documents: Iterable[Document], chunk_size: int = 4096, min_confidence: float | None = None
) -> Iterator[tuple[int, str, list[dict]]]:
    """``(document number, name, rows with predictions)`` in input order, ``chunk_size`` sentences at a time.

    Sentences are gathered across documents until ``chunk_size`` are waiting, then predicted together, so
    many short articles fill batches as well as one long file does; a document longer than that comes out
    in several consecutive pieces with the same number, so memory stays bounded whatever the input size.
    """
    waiting: list[tuple[int, str, dict, str | dict]] = []

    def flush() -> Iterator[tuple[int, str, list[dict]]]:
        predictions = predictor.predict(model_inputs([text for *_, text in waiting]), min_confidence)
        pieces = groupby(zip(waiting, predictions, strict=True), key=lambda item: item[0][:2])
        for (number, name), piece in pieces:
            yield number, name, [_merge(row, prediction) for (_, _, row, _), prediction in piece]

    for number, document in enumerate(documents):
        for row, text in zip(document.rows, document.model_texts, strict=True):
            waiting.append((number, document.name, row, text))
            if len(waiting) >= chunk_size:
                yield from flush()
                waiting = []
    if waiting:
        yield from flush()


def write_jsonl_rows(rows: Iterable[dict], handle) -> int:
    """Write rows as JSON lines to an open text handle; return how many."""
    count = 0
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
