"""Leave one field out: train on every field of the document corpus but one, score the one left out.

The mean over fields is our estimate for a field nobody annotated; the table goes to ``docs/cross_field.md``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm.auto import tqdm

from claimstance.config import command_line
from claimstance.data.annotations import known_labels, load_annotations
from claimstance.errors import ConfigError, exits_cleanly
from claimstance.tables import markdown_table

log = logging.getLogger(__name__)


def field_row(field: str, metrics: dict) -> dict:
    """One line of the table: the left-out field's size and scores."""
    report = metrics["test"]
    return {
        "field": field,
        "documents": metrics["data_groups"]["test"],
        "sentences": report["size"],
        "train_sentences": metrics["data_counts"]["train"]["total"],
        "macro_f1": round(report["macro_f1"], 4),
        "macro_f1_ci95": report["macro_f1_ci95"],
        "claim_macro_f1": round(report.get("claim_macro_f1", float("nan")), 4),
        "accuracy": round(report["accuracy"], 4),
        "f1": {label: round(values["f1-score"], 4) for label, values in report["per_class"].items()},
    }


def markdown(rows: list[dict], labels: list[str], command: str) -> str:
    """The docs page: one row per left-out field, then the mean."""
    lines = [
        "# Leave-one-field-out",
        "",
        "Each row trains on the document corpus without one field and scores that field's documents, all of them",
        "held out. The mean is our estimate for a field nobody annotated. The recipe is the default model and trainer",
        "trained on the other fields' documents alone for 2 epochs (no authored corpus, `configs/cross_field.yaml`), so",
        "compare rows with each other and with the documents-only row in `data/README.md`, not with the headline score.",
        "Measured with:",
        "",
        f"    {command}",
        "",
        markdown_table(
            ["left-out field", "docs", "sentences", "macro-F1 (95% CI)", "claims F1", *labels],
            [
                [
                    row["field"],
                    row["documents"],
                    row["sentences"],
                    f"{row['macro_f1']:.3f} ({row['macro_f1_ci95'][0]:.3f}-{row['macro_f1_ci95'][1]:.3f})",
                    row["claim_macro_f1"],
                    *(row["f1"][label] for label in labels),
                ]
                for row in rows
            ],
        ),
    ]
    mean = sum(row["macro_f1"] for row in rows) / len(rows)
    worst = min(rows, key=lambda row: row["macro_f1"])
    lines += [
        "",
        f"Mean macro-F1 over {len(rows)} left-out fields: **{mean:.3f}** (lowest: {worst['field']}, {worst['macro_f1']:.3f}).",
        "",
    ]
    return "\n".join(lines)


@exits_cleanly
def run(cfg: DictConfig) -> list[dict]:
    """``scripts/cross_field.py``: one training run per field, then ``docs/cross_field.{md,json}``."""
    fields = sorted({row.domain for row in load_annotations(cfg.data.annotations, known_labels(cfg.data)).rows})
    if cfg.fields:
        unknown = sorted(set(cfg.fields) - set(fields))
        if unknown:
            raise ConfigError(f"fields={unknown} are not fields of {cfg.data.annotations}; choose from {fields}")
        fields = [field for field in fields if field in set(cfg.fields)]
    from claimstance.training.trainer import train  # torch loads only once the fields are known to be good

    base = Path(cfg.paths.run_dir)
    rows = []
    for field in tqdm(fields, desc="Fields left out", unit="field"):
        run_cfg = OmegaConf.merge(cfg, {"data": {"hold_out_field": field, "name": f"cross_field-{field}"}})
        with open_dict(run_cfg):
            run_cfg.paths.run_dir = str(base / field)
            run_cfg.export.dir = str(base / field / "model")
        rows.append(field_row(field, train(run_cfg)))
        log.info("%s left out: macro-F1 %.3f on %d sentences", field, rows[-1]["macro_f1"], rows[-1]["sentences"])
        write_table(rows, Path(cfg.output), list(cfg.data.labels), of=len(fields))  # after every field: a long run keeps its rows
    log.info("\n%s", Path(cfg.output).with_suffix(".md").read_text())
    return rows


def write_table(rows: list[dict], output: Path, labels: list[str], of: int) -> None:
    """``<output>.json`` and ``.md``, saying how many of the fields are in when the run is not finished."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    page = markdown(rows, labels, command_line("cross_field.py"))
    if len(rows) < of:
        page += f"\n*Partial: {len(rows)} of {of} fields so far.*\n"
    output.with_suffix(".md").write_text(page)
