"""The tagging job behind ``predict``: ``text=`` or the documents of ``input=`` to JSON lines, an HTML report and a summary.

It lives in the library, not the command, so the benchmark times exactly what a user runs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

from claimstance.atomic import staged_file
from claimstance.data.textio import InputError
from claimstance.inference.documents import (
    PREDICTION_KEYS,
    Document,
    _segmented,
    document_name,
    input_files,
    read_documents,
    tag_documents,
    write_jsonl_rows,
)
from claimstance.inference.predictor import Predictor, check_min_confidence
from claimstance.inference.report import document_summary, write_html

log = logging.getLogger(__name__)


def _slim(row: Mapping) -> dict:
    """What a document summary reads of a row: a few fields instead of the whole record (bounded memory on big files)."""
    return {key: row[key] for key in ("text", *PREDICTION_KEYS)}


def _documents(cfg, files: Sequence[Path]) -> Iterator[Document]:
    from tqdm.auto import tqdm

    for path in tqdm(files, desc="Tagging", unit="doc", disable=len(files) < 2, file=sys.stderr):
        yield from read_documents(path, cfg.input_format, cfg.layout, document_name(path, cfg.input))


def tag(cfg) -> int:
    """Tag ``text=`` or the documents of ``input=``; JSON lines, an HTML report, a summary."""
    if (cfg.text is None) == (cfg.input is None):
        raise InputError('give exactly one of text="..." or input=FILE|FOLDER|GLOB')
    if cfg.text is not None and not str(cfg.text).strip():
        raise InputError("text is empty; give a sentence to label")
    min_confidence = check_min_confidence(cfg.min_confidence)
    files = input_files(cfg.input) if cfg.input is not None else []
    predictor = Predictor(
        cfg.model_dir, backend=cfg.backend, batch_size=cfg.batch_size, threads=cfg.threads, expected_labels=cfg.expected_labels
    )
    if cfg.text is not None:
        documents: Iterable[Document] = [_segmented("text", str(cfg.text), "lines")]
    else:
        documents = _documents(cfg, files)
    tagged = tag_documents(predictor, documents, cfg.chunk_size, min_confidence)
    no_claim = cfg.no_claim_label if cfg.no_claim_label in predictor.labels else None
    documents_seen: list[dict] = []  # one entry per document, with its rows for the HTML report and the summary
    summary_lines: list[str] = []
    summarise = bool(cfg.summary) and cfg.output is not None

    def close(document: dict | None) -> None:
        if document is not None and summarise:
            summary_lines.append(document_summary(document, predictor.labels, no_claim_label=no_claim))
        if document is not None and cfg.html is None:
            document["rows"] = []  # the summary is written: only the HTML report needs rows after this

    count = 0
    current: dict | None = None
    with staged_file(Path(cfg.output)) if cfg.output is not None else nullcontext(sys.stdout) as sink:
        for number, name, rows in tagged:
            count += write_jsonl_rows(rows, sink)
            if current is None or current["number"] != number:
                close(current)
                current = {"number": number, "doc": name, "rows": []}
                documents_seen.append(current)
            current["rows"].extend(rows if cfg.html is not None else map(_slim, rows))
        close(current)
    if cfg.output is not None:
        log.info("Wrote %d sentence(s) of %d document(s) to %s", count, len(documents_seen), cfg.output)
    if cfg.html is not None:
        title = f"claimstance: {cfg.input if cfg.input is not None else 'text'}"
        write_html(Path(cfg.html), documents_seen, predictor.labels, no_claim_label=no_claim, title=title)
        log.info("HTML report: %s", cfg.html)
    if summary_lines:
        print("\n\n".join(summary_lines))
    return count
