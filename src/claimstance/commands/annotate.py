"""``annotate``: write Label Studio tasks (with the model's pre-annotations) and read a tool's export back as a table.

The export reads sentences and articles exactly as ``predict`` does; the import writes the table that
``train data=table data.path=...`` trains on. Both write their files whole or not at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from claimstance.atomic import staged_file
from claimstance.data.labelstudio import TEXT_PAIR, label_config, read_export, task, write_table, write_tasks
from claimstance.data.textio import InputError
from claimstance.errors import ConfigError, exits_cleanly
from claimstance.inference.documents import (
    PREDICTION_KEYS,
    Document,
    document_name,
    input_files,
    read_documents,
    tag_documents,
)
from claimstance.inference.predictor import Predictor

log = logging.getLogger(__name__)

ACTIONS = ("export", "import")


@exits_cleanly
def run(cfg) -> int:
    """``scripts/annotate.py``: see ``configs/annotate.yaml`` for every option; returns the number of rows written."""
    if cfg.action not in ACTIONS:
        raise ConfigError(f"action must be one of {', '.join(ACTIONS)}, got {cfg.action!r}")
    if cfg.input is None:
        raise ConfigError("input= is required: the sentences to export, or the annotation tool's export to import")
    return export_tasks(cfg) if cfg.action == "export" else import_table(cfg)


def _documents(cfg) -> Iterator[Document]:
    for path in input_files(cfg.input):
        yield from read_documents(path, cfg.input_format, cfg.layout, document_name(path, cfg.input))


def _with_ids(rows: list[dict]) -> list[dict]:
    """Each row with a unique ``id``: the input's own ids if unique, else ``doc:n`` (an input id is kept as ``input_id``)."""
    ids = [row.get("id") for row in rows]
    if None not in ids and len(set(map(str, ids))) == len(ids):
        return [row | {"id": str(row["id"])} for row in rows]
    seen: Counter[str] = Counter()
    out = []
    for row in rows:
        rest = {("input_id" if key == "id" else key): value for key, value in row.items()}
        out.append({"id": f"{row['doc']}:{seen[row['doc']]}", **rest})
        seen[row["doc"]] += 1
    return out


def export_tasks(cfg) -> int:
    """Tasks for every sentence of ``input=``, pre-annotated when ``model_dir`` is given, and the labelling config."""
    if cfg.model_dir is None and not cfg.labels:
        raise ConfigError("give model_dir=EXPORT (pre-annotates, and its labels make the config) or labels=[a,b,c]")
    documents = _documents(cfg)
    if cfg.model_dir is None:
        rows = [row for document in documents for row in document.rows]
        predictions: list[dict | None] = [None] * len(rows)
        labels = list(cfg.labels)
        version = "none"
    else:
        predictor = Predictor(cfg.model_dir, backend=cfg.backend, batch_size=cfg.batch_size, threads=cfg.threads)
        if cfg.labels and list(cfg.labels) != predictor.labels:
            raise ConfigError(f"labels={list(cfg.labels)} differ from the model's labels {predictor.labels}; drop labels=")
        tagged = [row for _, _, rows in tag_documents(predictor, documents, cfg.chunk_size) for row in rows]
        rows = [{key: value for key, value in row.items() if key not in PREDICTION_KEYS} for row in tagged]
        predictions = [{key: row[key] for key in PREDICTION_KEYS} for row in tagged]
        labels = predictor.labels
        model = Path(cfg.model_dir).resolve()
        version = cfg.model_version or (model.parent.name if model.name == "model" else model.name)
    if not rows:
        raise InputError(f"{cfg.input}: no sentences to export")
    paired = any(row.get(TEXT_PAIR) is not None for row in rows)
    if paired:  # Label Studio rejects a task that lacks a field its config shows
        rows = [row | {TEXT_PAIR: row.get(TEXT_PAIR) or ""} for row in rows]
    tasks = [task(row, prediction, version) for row, prediction in zip(_with_ids(rows), predictions, strict=True)]
    output = Path(cfg.output or "tasks.json")
    config_xml = label_config(labels, text_pair=paired)
    count = write_tasks(tasks, output)
    with staged_file(Path(cfg.config_xml)) as handle:
        handle.write(config_xml)
    suggested = sum(1 for item in tasks if item.get("predictions"))
    log.info("Wrote %d task(s) (%d pre-annotated) to %s and the labelling config to %s", count, suggested, output, cfg.config_xml)
    return count


def import_table(cfg) -> int:
    """The table of human labels (with the model's suggestion beside each) from a Label Studio or doccano export."""
    imported = read_export(cfg.input, cfg.format)
    if not imported.rows:
        raise InputError(f"{cfg.input}: no annotated task in this export ({imported.skipped} without an annotation)")
    output = Path(cfg.output or "table.jsonl")
    write_table(imported.rows, output)
    log.info("Wrote %d labelled row(s) to %s", len(imported.rows), output)
    if imported.skipped:
        log.warning("Skipped %d task(s) with no annotation", imported.skipped)
    if imported.disagreements:
        log.warning("%d task(s) had annotations that disagree: kept the most recent of each", imported.disagreements)
    changed = sum(1 for row in imported.rows if row["suggested_label"] not in (None, row["label"]))
    if any(row["suggested_label"] is not None for row in imported.rows):
        log.info("The annotators changed the model's suggestion on %d of %d row(s)", changed, len(imported.rows))
    return len(imported.rows)
