"""The tagging job behind ``predict``: ``text=`` or the documents of ``input=`` to JSON lines, an HTML report and a summary.

It lives in the library, not the command, so the benchmark times exactly what a user runs. A folder or a glob is a
batch: a file that cannot be read is skipped, named in ``<output>.errors.jsonl`` and the log, and the rest is tagged
(``on_error``); ``engine=ray`` hands the same job to Ray Data (:mod:`claimstance.inference.ray_engine`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from claimstance.atomic import staged_file
from claimstance.data.textio import InputError
from claimstance.errors import ConfigError
from claimstance.inference.artifacts import CALIBRATION_FILE, ExportError, read_min_confidence
from claimstance.inference.documents import (
    PREDICTION_KEYS,
    Document,
    FileError,
    _segmented,
    check_pairs,
    document_name,
    input_files,
    is_batch,
    read_documents,
    read_file_documents,
    tag_documents,
    write_jsonl_rows,
)
from claimstance.inference.predictor import Predictor, check_min_confidence
from claimstance.inference.report import document_summary, write_html

log = logging.getLogger(__name__)


def _slim(row: Mapping) -> dict:
    """What a document summary reads of a row: a few fields instead of the whole record (bounded memory on big files)."""
    return {key: row[key] for key in ("text", *PREDICTION_KEYS)}


ON_ERROR = ("report", "skip", "fail")  # a batch's bad file: skip it, exit 3 | skip it, exit 0 | stop, exit 2
ENGINES = ("local", "ray")


@dataclass
class Tagged:
    """What one tagging run did: sentences written, documents tagged and the files a batch skipped (in input order)."""

    count: int
    documents: int
    skipped: list[FileError] = field(default_factory=list)
    errors_file: Path | str | None = None  # a URI when output= is on an object store


def check_options(cfg) -> tuple[str, str]:
    """``(engine, on_error)``, each checked against its choices before any model is loaded."""
    engine, on_error = str(cfg.get("engine", "local")), str(cfg.get("on_error", "report"))
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    return engine, on_error


def errors_path(output: str | Path) -> Path:
    """Where a batch lists the files it skipped: beside the output, named after it."""
    return Path(f"{str(output).rstrip('/')}.errors.jsonl")


def finish_batch(output: str | Path | None, skipped: list[FileError], files: int) -> Path | None:
    """Write (or clear a stale) errors file and report each skipped file once; the errors file, if written."""
    target = errors_path(output) if output is not None else None
    if not skipped:
        if target is not None:
            target.unlink(missing_ok=True)  # an errors file from an earlier run would describe files this run read
        return None
    if target is not None:
        with staged_file(target) as handle:
            write_jsonl_rows([error.as_row() for error in skipped], handle)
    where = f"; listed in {target}" if target is not None else ""
    lines = "\n".join(f"  {error}" for error in skipped)
    log.warning("Skipped %d of %d file(s) that could not be read%s:\n%s", len(skipped), files, where, lines)
    return target


def _documents(cfg, files: Sequence[Path], skipped: list[FileError] | None, needs_pair: bool) -> Iterator[Document]:
    """The documents of ``files`` in order; with ``skipped`` given, a file that cannot be read is noted there, not raised."""
    from tqdm.auto import tqdm

    for path in tqdm(files, desc="Tagging", unit="doc", disable=len(files) < 2, file=sys.stderr):
        name = document_name(path, cfg.input)
        if skipped is None:
            for document in read_documents(path, cfg.input_format, cfg.layout, name):
                yield check_pairs(document, path, needs_pair)
            continue
        try:
            documents = [check_pairs(d, path, needs_pair) for d in read_file_documents(path, cfg.input_format, cfg.layout, name)]
        except (InputError, OSError) as err:
            skipped.append(FileError.of(path, name, err))
            continue
        yield from documents


def tag(cfg) -> int:
    """Tag ``text=`` or the documents of ``input=``; the number of sentences written (what the benchmark times)."""
    return run_tagging(cfg).count


def resolve_min_confidence(value, model_dir) -> float | None:
    """A number in (0, 1), null, or ``auto``: the export's threshold that reached the run's target precision."""
    if value == "auto":
        chosen = read_min_confidence(model_dir)
        where = f"{model_dir}/{CALIBRATION_FILE}"
        if not chosen:
            raise ExportError(f"{where}: no fitted threshold for min_confidence=auto; give a number instead")
        if chosen.get("threshold") is None:
            raise ExportError(f"{where}: no threshold reached {chosen.get('target')} precision on validation; give a number")
        threshold = float(chosen["threshold"])
        log.info("min_confidence=auto: %.4f, the export's threshold for its validation target precision", threshold)
        return threshold
    return check_min_confidence(value)


def run_tagging(cfg) -> Tagged:
    """Tag ``text=`` or the documents of ``input=``; JSON lines, an HTML report, a summary, and what was skipped."""
    if (cfg.text is None) == (cfg.input is None):
        raise InputError('give exactly one of text="..." or input=FILE|FOLDER|GLOB')
    if cfg.text is not None and not str(cfg.text).strip():
        raise InputError("text is empty; give a sentence to label")
    engine, on_error = check_options(cfg)
    min_confidence = resolve_min_confidence(cfg.min_confidence, cfg.model_dir)
    if engine == "ray":
        from claimstance.inference.ray_engine import tag_with_ray

        return tag_with_ray(cfg, on_error, min_confidence)
    files = input_files(cfg.input) if cfg.input is not None else []
    batch = cfg.input is not None and is_batch(cfg.input) and on_error != "fail"
    predictor = Predictor(
        cfg.model_dir, backend=cfg.backend, batch_size=cfg.batch_size, threads=cfg.threads, expected_labels=cfg.expected_labels
    )
    skipped: list[FileError] = []
    if cfg.text is not None:
        documents: Iterable[Document] = [_segmented("text", str(cfg.text), "lines")]
    else:
        documents = _documents(cfg, files, skipped if batch else None, bool(getattr(predictor, "text_pair", False)))
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
    errors_file = finish_batch(cfg.output, skipped, len(files)) if batch else None
    return Tagged(count, len(documents_seen), skipped, errors_file)
