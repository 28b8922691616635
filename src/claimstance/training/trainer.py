"""Fine-tune a transformer with the HF ``Trainer``, evaluate it and export it: ``train(cfg)``.

The function is the whole job behind ``scripts/train.py``; tests and sweeps call it directly.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from datasets import Dataset
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.base import BaseEstimator
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import SequentialSampler
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    set_seed,
)

from claimstance.config import default_threads
from claimstance.data.dataset import prepare_dataset
from claimstance.errors import ConfigError
from claimstance.evaluation.metrics import evaluated_splits, plot_history, trainer_metrics
from claimstance.inference.card import model_card
from claimstance.inference.export import export_model
from claimstance.training.harness import RunRecord, evaluate, finish_run, new_record, prepare_run
from claimstance.training.models import max_positions, tokenize, training_arguments
from claimstance.training.tracking import apply_logger_env, start_tracking

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


def check_model_limits(cfg: DictConfig, model) -> None:
    """``data.max_length`` must fit the model's position embeddings."""
    limit = max_positions(model)
    if int(cfg.data.max_length) > limit:
        raise ConfigError(f"data.max_length={cfg.data.max_length} exceeds the model's limit of {limit} tokens")


def train(cfg: DictConfig) -> RunRecord:
    """Build the dataset, fit the configured model, evaluate, calibrate and export; return the run record.

    ``model`` is whatever ``cfg.model``'s ``_target_`` builds: a ``(model, tokenizer)`` pair is fine-tuned here with
    the HF Trainer; a scikit-learn estimator (``model=tfidf_logreg``) is fitted by :mod:`claimstance.training.baseline`.
    Both finish through :mod:`claimstance.training.harness`.
    """
    paths = prepare_run(cfg)
    threads = cfg.trainer.threads or default_threads()
    torch.set_num_threads(int(threads))
    apply_logger_env(cfg)
    args, precision = training_arguments(cfg, paths.run_dir / "checkpoints")
    main = args.process_index == 0
    trackers = start_tracking(cfg, paths.run_dir, main=main)
    labels = list(cfg.data.labels)
    with args.main_process_first(desc="dataset build"):
        dataset = prepare_dataset(cfg.data)

    set_seed(int(cfg.seed))  # before the classification head is created
    built = instantiate(cfg.model, labels=labels)
    if isinstance(built, BaseEstimator):
        from claimstance.training.baseline import fit_baseline

        return fit_baseline(cfg, built, dataset, paths, trackers)
    model, tokenizer = built
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
        + [instantiate(c, run_dir=paths.run_dir) for c in (cfg.logger.get("callbacks") or {}).values()],
    )
    log.info(
        "Training %s on %d sentences, precision %s, %d thread(s)", type(model).__name__, len(encoded["train"]), precision, threads
    )
    train_output = trainer.train(resume_from_checkpoint=paths.checkpoint)

    logits = {name: trainer.predict(encoded[name]).predictions for name in ["validation", *evaluated_splits(encoded)]}
    evaluation = evaluate(cfg, dataset, logits, paths.run_dir)
    training = {
        "precision": precision,
        "world_size": args.world_size,
        "train_runtime_s": round(train_output.metrics["train_runtime"], 1),
        "train_samples_per_second": train_output.metrics["train_samples_per_second"],
        "train_loss": train_output.metrics["train_loss"],
        "best_checkpoint": trainer.state.best_model_checkpoint,
    }
    best = trainer.state.best_metric
    if best is None:  # no checkpoint was chosen (evaluation off): the final model's validation score
        best = evaluation.validation[cfg.optimized_metric]
    record = new_record(cfg, dataset, evaluation, best, training)
    if not trainer.is_world_process_zero():
        return record
    plot_history(trainer.state.log_history, paths.run_dir / "training_curves.png", str(cfg.optimized_metric))

    def export(files: dict[str, str]) -> dict:
        return export_model(
            trainer.model,
            tokenizer,
            paths.export_dir,
            files={"README.md": model_card(cfg, record), **files},
            sample_texts=list(dataset["test"]["text"])[:256],
            onnx=bool(cfg.export.onnx),
            int8=bool(cfg.export.int8),
            overwrite=bool(cfg.overwrite),
        )

    return finish_run(cfg, record, dataset, evaluation, paths.run_dir, export, trackers)
