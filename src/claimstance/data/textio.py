"""One reader for the project's text inputs: whole files with exact offsets, streamed lines, JSON lines.

Every problem is an :class:`InputError` naming ``file:line``, so a bad byte deep in a large file is found
without opening it in an editor. Only UTF-8 is accepted: guessing an encoding would move offsets silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from claimstance.errors import UserError

BOM = b"\xef\xbb\xbf"


class InputError(UserError, ValueError):
    """Input text that cannot be read or predicted, named by file and line."""


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: input file does not exist")
    return path


def _line_of(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, byte column) of byte ``offset`` in ``data``."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def read_text(path: str | Path) -> str:
    """The whole file as UTF-8, every character kept, so offsets into the result index the file's text.

    Line endings stay as written (``\\r\\n`` is two characters) and a leading byte-order mark is kept as the
    character U+FEFF rather than dropped: dropping it would shift every offset by one. Callers that show or
    classify text strip it with the rest of the whitespace-like edges.
    """
    path = _existing(path)
    data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{path}:{_line_of(data, nul)[0]}: NUL byte; the input is binary, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = _line_of(data, err.start)
        raise InputError(f"{path}:{line}: invalid UTF-8 byte at column {column}; save the file as UTF-8") from err


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if b"\x00" in raw:
                raise InputError(f"{path}:{number}: NUL byte; the input is binary, not text")
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                message = f"invalid UTF-8 byte at column {err.start + 1}; save the file as UTF-8"
                raise InputError(f"{path}:{number}: {message}") from err


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without its line ending), one line at a time, for files of any size.

    A leading byte-order mark is dropped here (no offsets to keep); the column of a bad byte counts bytes.
    A missing file fails at the call, not at the first ``next``.
    """
    return _decoded_lines(_existing(path))


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file; anything but an object is an error."""
    return _records(path, iter_lines(path))


def read_jsonl(path: str | Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """Every (line number, object) of a JSON-lines file and every problem in it, so one pass names them all.

    A malformed line is reported and skipped; a bad byte ends the file (one problem). Blank lines are skipped.
    """
    records: list[tuple[int, dict]] = []
    problems: list[str] = []
    try:
        for number, line in iter_lines(path):
            if line.strip():
                try:
                    records.append((number, _record(path, number, line)))
                except InputError as err:
                    problems.append(str(err))
    except InputError as err:
        problems.append(str(err))
    return records, problems


def _record(path: str | Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{number}: malformed JSON ({err.msg})") from err
    if not isinstance(record, dict):
        raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
    return record


def _records(path: str | Path, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, dict]]:
    for number, line in lines:
        if line.strip():
            yield number, _record(path, number, line)
