"""The model card (``README.md`` of an export), rendered from ``templates/model_card.md`` for every model kind.

``huggingface_hub.ModelCard.from_template`` fills the Jinja template and writes the metadata block the Hub
reads (library, pipeline tag, tags), as setfit does for its cards.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from omegaconf import DictConfig

from claimstance.tables import markdown_table

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"


def min_confidence_line(threshold: Mapping) -> str:
    """The card's advice on abstaining, from the validation threshold."""
    if threshold["threshold"] is None:
        return f"no threshold reached {threshold['target']:.0%} precision on validation."
    return (
        f"`min_confidence={threshold['threshold']:.2f}` kept {threshold['target']:.0%} precision on validation "
        f"while answering {threshold['coverage']:.0%} of it."
    )


def _per_class(report: Mapping) -> str:
    rows = [
        [label, row["precision"], row["recall"], row["f1-score"], row["support"]]
        for label, row in ((label, report["per_class"][label]) for label in report["labels"])
    ]
    return markdown_table(["label", "precision", "recall", "F1", "support"], rows)


def model_card(cfg: DictConfig, record: Mapping, kind: Mapping) -> str:
    """``README.md`` for the export: labels and definitions, base model, data, scores, calibration, usage.

    ``kind`` is the model kind's own part (``ModelKind.card()``): ``title``, ``note``, ``library_name``,
    ``base_model`` and ``usage`` (markdown), so this module never asks which kind it describes.
    """
    labels = record["labels"]
    descriptions = cfg.data.get("descriptions") or {}
    counts = record["data_counts"]
    calibration = record["calibration"]
    splits = []
    for name in record["evaluated"]:
        report = record[name]
        low, high = report["macro_f1_ci95"]
        splits.append(
            {
                "name": name,
                "size": report["size"],
                "macro_f1": report["macro_f1"],
                "low": low,
                "high": high,
                "accuracy": report["accuracy"],
                "ece": calibration["splits"][name]["ece_after"],
                "table": _per_class(report),
            }
        )
    card_data = ModelCardData(
        library_name=kind["library_name"],
        pipeline_tag="text-classification",
        language="en",
        tags=["claimstance", "text-classification", "news", "stance"],
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        title=kind.get("title", ""),
        note=kind.get("note", ""),
        usage=kind["usage"],
        label_table=markdown_table(
            ["id", "label", "definition"], [[i, label, descriptions.get(label, "")] for i, label in enumerate(labels)]
        ),
        base_model=kind["base_model"],
        precision=record.get("precision", "-"),
        runtime=record["train_runtime_s"],
        seed=cfg.seed,
        optimized_metric=record["optimized_metric"],
        best_validation=record["best_validation"],
        temperature=calibration["temperature"],
        min_confidence=min_confidence_line(calibration["min_confidence"]),
        counts_table=markdown_table(
            ["split", *labels, "total"], [[s, *(counts[s][label] for label in labels), counts[s]["total"]] for s in counts]
        ),
        splits=splits,
    )
    return str(card)
