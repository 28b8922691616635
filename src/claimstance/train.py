"""Fine-tune a transformer with the HF ``Trainer``, evaluate it and export it: ``train(cfg)``.

The function is the whole job behind ``scripts/train.py``; tests and sweeps call it directly.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import SequentialSampler
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from claimstance.config import ConfigError, check_config, exits_cleanly
from claimstance.dataset import label_table, prepare_dataset
from claimstance.export import ExportError, export_model, model_card
from claimstance.metrics import evaluated_splits, plot_history, score, trainer_metrics, write_report
from claimstance.model import max_positions
from claimstance.predict import default_threads
from claimstance.tracking import apply_logger_env, finish_tracking, start_tracking

log = logging.getLogger(__name__)


class ClaimTrainer(Trainer):
    """The HF Trainer, with evaluation and prediction in dataset order and optional class weights.

    Length-grouped batches pay off in training; applied to evaluation (as ``group_by_length``
    does) they would reorder predictions against the rows they belong to. ``class_weights`` (one per
    label) weigh the cross-entropy, so that rare labels in real text (caution, request) count as much.
    """

    def __init__(self, *args, class_weights: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.class_weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=self.class_weights.to(outputs.logits.device))
        return (loss, outputs) if return_outputs else loss

    def _get_eval_sampler(self, eval_dataset: Dataset) -> SequentialSampler | None:
        return SequentialSampler(eval_dataset) if eval_dataset is not None else None


class HistoryCSV(TrainerCallback):
    """Append every value the Trainer logs to ``metrics_history.csv`` in the run folder."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "metrics_history.csv"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "epoch", "name", "value"])
            for name, value in logs.items():
                writer.writerow([state.global_step, state.epoch, name, value])


def class_weights(kind: str | None, train_labels: list[int], n_labels: int) -> torch.Tensor | None:
    """``balanced`` weights from scikit-learn (n / (k * count)) for the loss, or None for plain cross-entropy."""
    if kind is None:
        return None
    if kind != "balanced":
        raise ConfigError(f"trainer.class_weights must be balanced or null, got {kind!r}")
    present = sorted(set(train_labels))
    weights = dict(
        zip(present, compute_class_weight("balanced", classes=np.array(present), y=np.array(train_labels)), strict=True)
    )
    return torch.tensor([weights.get(i, 1.0) for i in range(n_labels)], dtype=torch.float32)


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (avx512_bf16 / AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(requested: str, use_cuda: bool, cpu_bf16: bool) -> str:
    """The precision to train in: ``auto`` picks the fastest supported; unsupported falls back to fp32."""
    if use_cuda:
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested == "auto":
            return "bf16" if bf16_ok else "fp16"
        if requested == "bf16" and not bf16_ok:
            log.warning("trainer.precision=bf16 is not supported by this GPU; using fp32")
            return "fp32"
        return requested
    if requested in ("auto", "bf16") and cpu_bf16:
        return "bf16"
    if requested in ("bf16", "fp16"):
        log.warning("trainer.precision=%s is not supported on this CPU; using fp32", requested)
    return "fp32"


def tokenize(dataset: DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int) -> DatasetDict:
    """Token ids, a ``length`` column for length-grouped batches and a ``truncated`` flag; no padding (done per batch).

    Everything, the truncation count included, comes out of one ``map``: for a dataset loaded from
    disk ``datasets`` caches it there, keyed by the dataset's fingerprint (new when the annotations
    change), the tokenizer and max_length, so an unchanged dataset is tokenized once.
    """

    def encode(batch: dict) -> dict:
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length, return_length=True)
        encoded["truncated"] = [n > max_length for n in tokenizer(batch["text"], return_length=True)["length"]]
        return encoded

    encoded = dataset.map(encode, batched=True, desc="Tokenizing")
    too_long = Counter({split: sum(part["truncated"]) for split, part in encoded.items()})
    if sum(too_long.values()):
        log.warning(
            "%d sentence(s) longer than data.max_length=%d tokens were truncated (%s)",
            sum(too_long.values()),
            max_length,
            ", ".join(f"{s}: {n}" for s, n in too_long.items() if n),
        )
    return encoded


def training_arguments(cfg: DictConfig, output_dir: Path) -> tuple[TrainingArguments, str]:
    """``TrainingArguments`` from ``trainer.args`` (plain containers) plus precision and logger."""
    args = OmegaConf.to_container(cfg.trainer.args, resolve=True)
    use_cuda = torch.cuda.is_available() and not args.get("use_cpu", False)
    precision = resolve_precision(cfg.trainer.precision, use_cuda, cpu_supports_bf16())
    args.update(
        use_cpu=not use_cuda,  # bf16 autocast on CPU needs it stated
        output_dir=str(output_dir),
        seed=int(cfg.seed),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to=list(cfg.logger.report_to),
    )
    return TrainingArguments(**args), precision


def evaluate_split(trainer: Trainer, split: Dataset, labels: list[str], no_claim_label: str | None) -> tuple[dict, list[int]]:
    """scikit-learn report (bootstrap over the split's documents or pairs) and predicted ids for one split."""
    output = trainer.predict(split)
    predicted = output.predictions.argmax(-1).tolist()
    return score(output.label_ids.tolist(), predicted, labels, list(split["group"]), no_claim_label), predicted


def check_model_limits(cfg: DictConfig, model) -> None:
    """``data.max_length`` must fit the model's position embeddings."""
    limit = max_positions(model)
    if int(cfg.data.max_length) > limit:
        raise ConfigError(f"data.max_length={cfg.data.max_length} exceeds the model's limit of {limit} tokens")


def prepare_run(cfg: DictConfig) -> tuple[Path, Path, str | None]:
    """Run folder, export folder and checkpoint to resume from; refuses to clobber an export."""
    check_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    export_dir = Path(cfg.export.dir)
    if export_dir.exists() and not cfg.overwrite:
        raise ExportError(f"{export_dir}: an export is already there; pass overwrite=true to replace it")
    checkpoint = None
    if cfg.resume_from:
        checkpoint = get_last_checkpoint(str(run_dir / "checkpoints")) if (run_dir / "checkpoints").is_dir() else None
        if checkpoint is None:
            raise ConfigError(f"resume_from={cfg.resume_from}: no checkpoint-* folder under {run_dir / 'checkpoints'}")
        log.info("Resuming from %s", checkpoint)
    return run_dir, export_dir, checkpoint


def train(cfg: DictConfig) -> dict:
    """Build the dataset, fine-tune, evaluate on test and challenge, export; return the metrics."""
    if cfg.model.get("engine") == "sklearn":  # model=tfidf_logreg: the floor, on the same splits and report
        from claimstance.baseline import train_baseline

        return train_baseline(cfg)
    run_dir, export_dir, checkpoint = prepare_run(cfg)
    threads = cfg.trainer.threads or default_threads()
    torch.set_num_threads(int(threads))
    apply_logger_env(cfg)
    args, precision = training_arguments(cfg, run_dir / "checkpoints")
    trackers = start_tracking(cfg, run_dir, main=args.process_index == 0)
    labels = list(cfg.data.labels)
    with args.main_process_first(desc="dataset build"):
        dataset = prepare_dataset(cfg.data)

    set_seed(int(cfg.seed))  # before the classification head is created
    model, tokenizer = instantiate(cfg.model, labels=labels)
    model.accepts_loss_kwargs = False  # its loss is a batch mean; else the Trainer multiplies it by the world size
    check_model_limits(cfg, model)
    with args.main_process_first(desc="tokenization"):
        encoded = tokenize(dataset, tokenizer, int(cfg.data.max_length))

    trainer = ClaimTrainer(
        model=model,
        args=args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=trainer_metrics(labels),
        class_weights=class_weights(cfg.trainer.get("class_weights"), list(dataset["train"]["label"]), len(labels)),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=int(cfg.trainer.early_stopping_patience))]
        + [instantiate(c, run_dir=run_dir) for c in (cfg.logger.get("callbacks") or {}).values()],
    )
    log.info(
        "Training %s on %d sentences, precision %s, %d thread(s)", type(model).__name__, len(encoded["train"]), precision, threads
    )
    train_output = trainer.train(resume_from_checkpoint=checkpoint)

    no_claim = cfg.data.get("no_claim_label")
    evaluated = {name: evaluate_split(trainer, encoded[name], labels, no_claim) for name in evaluated_splits(encoded)}
    metrics = {
        "labels": labels,
        "precision": precision,
        "world_size": args.world_size,
        "train_runtime_s": round(train_output.metrics["train_runtime"], 1),
        "train_samples_per_second": train_output.metrics["train_samples_per_second"],
        "train_loss": train_output.metrics["train_loss"],
        "data_counts": label_table(dataset),
        "data_groups": {name: len(set(part["group"])) for name, part in dataset.items()},  # documents, pairs or sentences
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_validation_macro_f1": trainer.state.best_metric,
        "evaluated": list(evaluated),
        **{name: report for name, (report, _) in evaluated.items()},
    }
    if not trainer.is_world_process_zero():
        return metrics

    for name, (report, predicted) in evaluated.items():
        log.info("\n%s", write_report(report, run_dir, name))
        write_predictions_table(dataset[name], predicted, labels, run_dir / f"{name}_predictions.jsonl")
    plot_history(trainer.state.log_history, run_dir / "training_curves.png")

    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    card = model_card(cfg, metrics)
    checks = export_model(
        trainer.model,
        tokenizer,
        export_dir,
        files={"README.md": card, "metrics.json": json.dumps(metrics, indent=2), "training_config.yaml": config_yaml},
        sample_texts=list(dataset["test"]["text"])[:256],
        onnx=bool(cfg.export.onnx),
        int8=bool(cfg.export.int8),
        overwrite=bool(cfg.overwrite),
    )
    metrics["export"] = {"dir": str(export_dir), **checks}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))  # last: its presence means the run finished
    finish_tracking(trackers, cfg, metrics, run_dir, export_dir)
    log.info("\n%s", final_table(metrics))
    log.info("Exported model: %s", export_dir)
    return metrics


def write_predictions_table(split: Dataset, predicted: list[int], labels: list[str], path: Path) -> None:
    """Every evaluated sentence with its gold and predicted label, for error analysis."""
    with path.open("w", encoding="utf-8") as handle:
        for row, guess in zip(split, predicted, strict=True):
            record = {
                "id": row["id"],
                "group": row["group"],
                "domain": row["domain"],
                "text": row["text"],
                "gold": labels[row["label"]],
                "predicted": labels[guess],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


SPLIT_TITLES = {"test": "test (held out)", "challenge": "challenge (written apart)"}


def final_table(metrics: dict) -> str:
    """The closing summary: macro-F1 with its 95% interval, claim-label F1 and accuracy per split; the headline's per-label F1."""
    rows = [f"{'split':<28}{'macro-F1':>9}{'95% CI':>15}{'claims F1':>11}{'accuracy':>10}{'size':>7}"]
    for name in metrics["evaluated"]:
        report = metrics[name]
        low, high = report["macro_f1_ci95"]
        claims = f"{report['claim_macro_f1']:.3f}" if "claim_macro_f1" in report else "-"
        rows.append(
            f"{SPLIT_TITLES.get(name, name):<28}{report['macro_f1']:>9.3f}{f'{low:.3f}-{high:.3f}':>15}{claims:>11}"
            f"{report['accuracy']:>10.3f}{report['size']:>7}"
        )
        if "pairs" in report:
            rows.append(f"{'':<28}pair consistency {report['pairs']['consistency']:.3f} ({report['pairs']['pairs']} pairs)")
    headline = metrics["test"]["per_class"]
    rows.append("test per-label F1: " + ", ".join(f"{label} {values['f1-score']:.3f}" for label, values in headline.items()))
    rows.append(
        f"training: {metrics['train_runtime_s']} s, {metrics['train_samples_per_second']:.1f} samples/s, {metrics['precision']}"
    )
    return "\n".join(rows)


@exits_cleanly
def run(cfg: DictConfig) -> float:
    """``scripts/train.py``: train, and return validation macro-F1 as the sweep objective."""
    return float(train(cfg)["best_validation_macro_f1"])
