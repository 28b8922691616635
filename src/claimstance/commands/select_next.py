"""``select_next``: rank an unlabelled pool by how unsure the export is, and write the ``n`` sentences to label next.

The pool is read as ``predict`` reads its input (files, folders, globs; sentences or articles), scored with the
calibrated ``Predictor.predict_proba`` and ranked by :mod:`claimstance.inference.selection`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from claimstance.atomic import staged_file
from claimstance.errors import ConfigError, exits_cleanly
from claimstance.inference.documents import document_name, input_files, read_documents, read_inputs
from claimstance.inference.predictor import Predictor
from claimstance.inference.selection import NearDuplicateFilter, check_options, select

log = logging.getLogger(__name__)
FORMATS = ("jsonl", "labelstudio")


def pool_rows(cfg) -> tuple[list[dict], list[str]]:
    """Every sentence of ``input=`` with its position fields, and the texts the model reads."""
    rows: list[dict] = []
    texts: list[str] = []
    for path in input_files(cfg.input):
        for document in read_documents(path, cfg.input_format, cfg.layout, document_name(path, cfg.input)):
            for row in document.rows:
                # a sentence row keeps its own id; a sentence cut from an article gets one from its place
                rows.append({**row, "id": row["id"] if "line" in row and "id" in row else f"{row['doc']}:{row['sentence']}"})
            texts += document.model_texts
    return rows, texts


def labelled_texts(spec: str | None) -> list[str]:
    """The sentences of ``exclude=`` (JSONL ``text`` fields or lines), none if unset."""
    if spec is None:
        return []
    return [text for path in input_files(spec) for text in read_inputs(path)]


def picked_row(row: Mapping, probabilities: np.ndarray, priority: float, rank: int, labels: Sequence[str]) -> dict:
    """The pool row with the model's label, calibrated probabilities, the score that ranked it and its rank."""
    best = int(probabilities.argmax())
    return {
        **row,
        "label": labels[best],
        "score": round(float(probabilities[best]), 6),
        "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probabilities, strict=True)},
        "priority": round(float(priority), 6),
        "rank": rank,
    }


def write_picks(cfg, rows: Sequence[dict], labels: Sequence[str]) -> None:
    """JSONL rows, or Label Studio tasks whose pre-annotation is the model's label and calibrated score."""
    if cfg.format == "jsonl":
        with staged_file(Path(cfg.output)) as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    from claimstance.data.labelstudio import label_config, task, write_tasks

    data_keys = [key for key in rows[0] if key not in ("label", "score")] if rows else []
    write_tasks((task({key: row[key] for key in data_keys}, row, "claimstance-select") for row in rows), cfg.output)
    if cfg.label_config is not None:
        with staged_file(Path(cfg.label_config)) as handle:
            handle.write(label_config(labels))


@exits_cleanly
def run(cfg) -> int:
    """``scripts/select_next.py``: see ``configs/select_next.yaml`` for every option; returns how many sentences were picked."""
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    check_options(cfg.n, cfg.strategy)
    predictor = Predictor(
        cfg.model_dir, backend=cfg.backend, batch_size=cfg.batch_size, threads=cfg.threads, expected_labels=cfg.expected_labels
    )
    rows, texts = pool_rows(cfg)
    duplicates = NearDuplicateFilter(cfg.duplicate_threshold, existing=labelled_texts(cfg.exclude))
    probabilities = predictor.predict_proba(texts)
    picked, scores = select(probabilities, texts, cfg.n, cfg.strategy, bool(cfg.balance), duplicates)
    out = [picked_row(rows[i], probabilities[i], scores[i], rank, predictor.labels) for rank, i in enumerate(picked, 1)]
    write_picks(cfg, out, predictor.labels)
    log.info("Picked %d of %d sentence(s) by %s; wrote %s", len(out), len(rows), cfg.strategy, cfg.output)
    return len(out)
