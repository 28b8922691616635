"""Annotation-tool formats: Label Studio tasks and labelling config out, Label Studio and doccano exports back in.

Formats only, no model: the ``annotate`` command adds the model's suggestions. What comes back is a table
(``id``, ``text``, ``label`` = the human label, ``annotator``, the model's ``suggested_label`` and
``suggested_score`` beside it, then the task's own fields) that ``data=table data.path=...`` trains on.

Import policy, the same for both tools where they allow it:

- a task with no usable annotation (none, all cancelled, or an empty choice) is skipped and counted: exports of
  a project still being labelled are normal;
- Label Studio annotations of one task that disagree: the most recently updated one is kept and the task counted;
- a doccano row with several different labels (its collaborative export merges annotators, without times) is an
  error: there is no most recent one to keep, so the user resolves it in doccano or exports one annotator's file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from claimstance.atomic import staged_file
from claimstance.data.textio import InputError, iter_jsonl, read_text
from claimstance.errors import ConfigError

CHOICES = "label"  # the <Choices name=...> the labelling config declares; its value names the result of an annotation
TEXT = "text"  # the task data key, and the <Text name=...>, of the sentence
TEXT_PAIR = "text_pair"  # the task data key, and the second <Text name=...>, of an optional paired text
IMPORT_FORMATS = ("labelstudio", "doccano")
TABLE_FIELDS = ("id", TEXT, TEXT_PAIR, "label", "annotator", "suggested_label", "suggested_score", "model_version")


def label_config(labels: Sequence[str], text_pair: bool = False) -> str:
    """The Label Studio labelling config for single-label classification over ``labels`` (in that order)."""
    if not labels or any(not isinstance(label, str) or not label.strip() for label in labels):
        raise ConfigError(f"labels must be a non-empty list of non-empty strings, got {list(labels)!r}")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels has duplicates: {list(labels)}")
    lines = ["<View>", f'  <Text name="{TEXT}" value="${TEXT}"/>']
    if text_pair:
        lines.append(f'  <Text name="{TEXT_PAIR}" value="${TEXT_PAIR}"/>')
    lines.append(f'  <Choices name="{CHOICES}" toName="{TEXT}" choice="single" showInLine="true">')
    lines += [f"    <Choice value={quoteattr(label)}/>" for label in labels]
    lines += ["  </Choices>", "</View>", ""]
    return "\n".join(lines)


def choice_result(label: str) -> list[dict]:
    """The ``result`` of a prediction or annotation that picks ``label`` in the generated config."""
    return [{"from_name": CHOICES, "to_name": TEXT, "type": "choices", "value": {"choices": [label]}}]


def task(row: Mapping, prediction: Mapping | None = None, model_version: str = "claimstance") -> dict:
    """One Label Studio task from a row (``id``, ``text``, optional ``text_pair``, any other fields pass through).

    ``prediction`` (a :meth:`Predictor.predict` record) becomes a pre-annotation with the model's label and its
    calibrated score; an abstention (label None) adds none.
    """
    if not isinstance(row.get(TEXT), str) or not row[TEXT].strip():
        raise InputError(f"row {row.get('id')!r}: needs a non-empty string field '{TEXT}'")
    out: dict = {"data": dict(row)}
    if prediction is not None and prediction.get("label") is not None:
        out["predictions"] = [
            {"model_version": model_version, "score": float(prediction["score"]), "result": choice_result(prediction["label"])}
        ]
    return out


@dataclass
class Imported:
    """Rows read back from an export, and what was left out or resolved on the way (for the command's summary)."""

    rows: list[dict] = field(default_factory=list)
    skipped: int = 0  # tasks without a usable annotation
    disagreements: int = 0  # tasks whose annotations disagreed (the most recent was kept)


def _where(path: Path, index: int, item: object) -> str:
    ident = item.get("id") if isinstance(item, Mapping) else None
    return f"{path}: task {index}" + (f" (id {ident})" if ident is not None else "")


def _choice(where: str, key: str, result: object) -> str | None:
    """The one label an annotation's ``result`` picks, or None for an empty result."""
    if not isinstance(result, list):
        raise InputError(f"{where}: field '{key}' must be a list, got {type(result).__name__}")
    picked = [item for item in result if isinstance(item, Mapping) and item.get("type") == "choices"]
    if len(picked) > 1:
        picked = [item for item in picked if item.get("from_name") == CHOICES]
        if len(picked) != 1:
            raise InputError(f"{where}: field '{key}' holds several choices results; one named '{CHOICES}' is read")
    if not picked:
        if result:
            kinds = sorted({str(item.get("type")) for item in result if isinstance(item, Mapping)})
            raise InputError(f"{where}: field '{key}' holds no choices result (types {kinds}); only classification is read")
        return None
    value = picked[0].get("value")
    choices = value.get("choices") if isinstance(value, Mapping) else None
    if not isinstance(choices, list) or any(not isinstance(c, str) for c in choices):
        raise InputError(f"{where}: field '{key}[].value.choices' must be a list of label strings, got {choices!r}")
    if len(choices) > 1:
        raise InputError(f"{where}: field '{key}[].value.choices' holds {len(choices)} labels {choices}; one is needed")
    return choices[0] if choices else None


def _suggestion(where: str, predictions: object, number: int, annotation: Mapping) -> dict:
    """The model's label, score and version beside the kept annotation (all None when there was no prediction).

    Label Studio's JSON export lists a task's ``predictions`` as ids and puts the prediction the annotator started
    from in the annotation's ``prediction``; a task whose ``predictions`` are objects gives its last one.
    """
    if predictions is None:
        predictions = []
    if not isinstance(predictions, list) or any(not isinstance(p, (Mapping, int)) for p in predictions):
        raise InputError(f"{where}: field 'predictions' must be a list of prediction objects or ids, got {predictions!r}")
    objects = [(index, p) for index, p in enumerate(predictions) if isinstance(p, Mapping)]
    linked = annotation.get("prediction")
    if isinstance(linked, Mapping) and linked.get("result"):
        key, chosen = f"annotations[{number}].prediction", linked
    elif objects:
        key, chosen = f"predictions[{objects[-1][0]}]", objects[-1][1]
    else:
        return {"suggested_label": None, "suggested_score": None, "model_version": None}
    label = _choice(where, f"{key}.result", chosen.get("result", []))
    return {"suggested_label": label, "suggested_score": chosen.get("score"), "model_version": chosen.get("model_version")}


def _annotator(annotation: Mapping) -> str | None:
    """Who labelled: Label Studio exports ``completed_by`` as a user id, or an object with the email."""
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("email") or who.get("id")
    return None if who is None else str(who)


def _row(data: Mapping, ident: object, label: str, annotator: str | None, suggestion: Mapping) -> dict:
    """A table row: the fixed fields first, then the task's own fields (renamed ``input_<key>`` on a clash)."""
    row = {"id": str(ident), TEXT: data[TEXT]}
    if data.get(TEXT_PAIR):  # an empty pair is the filler of a task without one
        row[TEXT_PAIR] = data[TEXT_PAIR]
    row |= {"label": label, "annotator": annotator, **suggestion}
    extra = {key: value for key, value in data.items() if key not in ("id", TEXT, TEXT_PAIR)}
    return row | {(f"input_{key}" if key in TABLE_FIELDS else key): value for key, value in extra.items()}


def read_labelstudio(path: str | Path) -> Imported:
    """Rows from a Label Studio JSON export (``GET /api/projects/ID/export?exportType=JSON``): one per annotated task."""
    path = Path(path)
    try:
        tasks = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: malformed JSON ({err.msg}); a Label Studio export is one JSON list") from err
    if not isinstance(tasks, list):
        hint = " (a doccano JSONL export: use format=doccano)" if isinstance(tasks, Mapping) and "label" in tasks else ""
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}{hint}")
    imported = Imported()
    for index, item in enumerate(tasks):
        where = _where(path, index, item)
        data = item.get("data") if isinstance(item, Mapping) else None
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: field 'data' must be an object holding the task's '{TEXT}'")
        if not isinstance(data.get(TEXT), str) or not data[TEXT].strip():
            raise InputError(f"{where}: field 'data.{TEXT}' must be a non-empty string, got {data.get(TEXT)!r}")
        annotations = item.get("annotations", [])
        if not isinstance(annotations, list):
            raise InputError(f"{where}: field 'annotations' must be a list, got {type(annotations).__name__}")
        labelled = []
        for number, annotation in enumerate(annotations):
            if not isinstance(annotation, Mapping):
                raise InputError(f"{where}: field 'annotations[{number}]' must be an object")
            if annotation.get("was_cancelled"):
                continue
            label = _choice(where, f"annotations[{number}].result", annotation.get("result"))
            if label is not None:
                stamp = str(annotation.get("updated_at") or annotation.get("created_at") or "")
                labelled.append((stamp, number, label, annotation))
        if not labelled:
            imported.skipped += 1
            continue
        if len({label for _, _, label, _ in labelled}) > 1:
            imported.disagreements += 1
        _, number, label, latest = max(labelled, key=lambda entry: entry[:2])
        suggestion = _suggestion(where, item.get("predictions"), number, latest)
        ident = data.get("id", item.get("id"))
        imported.rows.append(_row(data, ident, label, _annotator(latest), suggestion))
    return imported


def read_doccano(path: str | Path) -> Imported:
    """Rows from a doccano 1.x text-classification JSONL export (``{"id", "text", "label": [...], ...}`` per line).

    A non-collaborative doccano export is one file per annotator (``NAME.jsonl``): the file's name is the
    annotator unless a row names one (``annotator`` or ``username``); ``all.jsonl`` names nobody.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise InputError(
            f"{path}: a doccano export is JSON lines (.jsonl); for a Label Studio JSON export use format=labelstudio"
        )
    default_annotator = None if path.stem == "all" else path.stem
    no_suggestion = {"suggested_label": None, "suggested_score": None, "model_version": None}
    imported = Imported()
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        text = record.get(TEXT)
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: field '{TEXT}' must be a non-empty string, got {text!r}")
        labels = record.get("label", [])
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, list) or any(not isinstance(label, str) for label in labels):
            raise InputError(f"{where}: field 'label' must be a list of label strings, got {labels!r}")
        distinct = sorted(set(labels))
        if not distinct:
            imported.skipped += 1
            continue
        if len(distinct) > 1:
            raise InputError(
                f"{where}: field 'label' holds {len(distinct)} different labels {distinct}; single-label training needs one "
                "(resolve them in doccano, or export with collaborative annotation off and import one annotator's file)"
            )
        annotator = record.get("annotator", record.get("username", default_annotator))
        data = {key: value for key, value in record.items() if key not in ("label", "annotator", "username")}
        data[TEXT] = text
        ident = record.get("id", number)
        imported.rows.append(_row(data, ident, distinct[0], None if annotator is None else str(annotator), no_suggestion))
    return imported


def read_export(path: str | Path, export_format: str) -> Imported:
    """Rows from an annotation tool's export: ``labelstudio`` (JSON) or ``doccano`` (JSONL)."""
    if export_format not in IMPORT_FORMATS:
        raise ConfigError(f"format must be one of {', '.join(IMPORT_FORMATS)}, got {export_format!r}")
    return read_labelstudio(path) if export_format == "labelstudio" else read_doccano(path)


TABLE_SUFFIXES = (".jsonl", ".csv")


def write_table(rows: Sequence[Mapping], path: str | Path) -> None:
    """Write rows as ``.jsonl`` or ``.csv`` (nested values as JSON text), whole or not at all."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(f"output must end in {' or '.join(TABLE_SUFFIXES)}, got {str(path)!r}")
    with staged_file(path) as handle:
        if path.suffix.lower() == ".jsonl":
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: _cell(row.get(key)) for key in columns} for row in rows)


def _cell(value: object) -> object:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (Mapping, list)) else value


def write_tasks(tasks: Iterable[Mapping], path: str | Path) -> int:
    """Write tasks as one JSON list (what Label Studio's import takes), whole or not at all; return how many."""
    items = list(tasks)
    with staged_file(Path(path)) as handle:
        json.dump(items, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    return len(items)
