"""Hugging Face model builders behind the transformer kind (:mod:`claimstance.training.transformer`), and their plumbing.

Each builder returns ``(model, tokenizer)`` with the label names written into ``id2label``/``label2id``,
so the exported ``config.json`` carries them and nothing downstream hard-codes them. Tokenization,
precision and ``TrainingArguments`` live here too: training and the benchmark share them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
)

from claimstance.errors import UserError

log = logging.getLogger(__name__)


class ModelLoadError(UserError, OSError):
    """A base model that cannot be loaded, with what to do about it."""


def label_maps(labels: Sequence[str]) -> dict:
    """``id2label``/``label2id`` keyword arguments for a model config."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


# Where Hugging Face encoders keep their stack of layers, under ``model.base_model``: BERT/RoBERTa/ELECTRA,
# DistilBERT, DeBERTa-v2/XLM (``layers``), GPT-2/BLOOM (``h``), T5 (``block``).
LAYER_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "h", "block", "encoder.block")


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList | None:
    """The encoder's layers, lowest first: a known attribute path, else the longest ``ModuleList`` under the base model."""
    base = model.base_model
    for path in LAYER_PATHS:
        found = base
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, torch.nn.ModuleList) and len(found):
            return found
    lists = [module for module in base.modules() if isinstance(module, torch.nn.ModuleList) and len(module)]
    return max(lists, key=len, default=None)


def freeze_lower_layers(model: PreTrainedModel, layers: int) -> None:
    """Keep the input embeddings and the first ``layers`` encoder layers as pre-trained (no gradient, no update).

    Works for any Hugging Face encoder: the layers are found by :func:`encoder_layers`, the embeddings by
    ``get_input_embeddings()``, so ``model.freeze_layers`` carries over to another ``model.name_or_path``.
    """
    model.get_input_embeddings().weight.requires_grad_(False)
    if not layers:
        return
    stack = encoder_layers(model)
    if stack is None:
        raise ModelLoadError(
            f"model.freeze_layers={layers}: {type(model).__name__} has no list of encoder layers to freeze; "
            "pass model.freeze_layers=0 to train every layer"
        )
    if layers > len(stack):
        raise ModelLoadError(
            f"model.freeze_layers={layers}: {type(model).__name__} has only {len(stack)} encoder layers; "
            f"pass a number up to {len(stack)}, or model.freeze_layers=0 to train every layer"
        )
    for layer in stack[:layers]:
        layer.requires_grad_(False)


def load_pretrained(
    name_or_path: str, labels: Sequence[str], freeze_embeddings: bool = False, freeze_layers: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Any Hugging Face model id or local folder, with a fresh classification head for ``labels``.

    ``freeze_embeddings`` keeps the input word embeddings as pre-trained: in MiniLM they are half of
    the parameters, so the optimizer step and backward pass get much cheaper on a CPU; ``freeze_layers``
    also keeps the lowest encoder layers, whose backward pass is then skipped.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, **label_maps(labels), ignore_mismatched_sizes=True
        )
    except (OSError, ValueError) as err:
        if Path(name_or_path).exists():
            raise ModelLoadError(f"model.name_or_path={name_or_path}: folder exists but is not a usable model: {err}") from err
        raise ModelLoadError(
            f"model.name_or_path={name_or_path}: not a local folder, and the Hugging Face Hub could not provide it "
            "(offline, HF_HUB_OFFLINE=1, or no such model). Download it on a connected machine "
            "(huggingface-cli download NAME --local-dir DIR) and pass model.name_or_path=DIR, "
            "or use the offline default model=minilm."
        ) from err
    if freeze_embeddings or freeze_layers:
        freeze_lower_layers(model, int(freeze_layers))
    return model, tokenizer


def tiny_bert(
    tokenizer: str, labels: Sequence[str], hidden_size: int = 32, layers: int = 2, heads: int = 2, max_positions: int = 512
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A randomly initialised BERT small enough for seconds-long tests, with a real tokenizer."""
    tok = AutoTokenizer.from_pretrained(tokenizer)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden_size * 4,
        max_position_embeddings=max_positions,
        **label_maps(labels),
    )
    return BertForSequenceClassification(config), tok


def max_positions(model: PreTrainedModel) -> int:
    """Longest input the model's position embeddings allow."""
    return int(getattr(model.config, "max_position_embeddings", 512))


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

    A ``text_pair`` column (``data.text_pair_field``: a stance target, a question, a context sentence) goes to the
    tokenizer as the second segment. Everything, the truncation count included, comes out of one ``map``: for a
    dataset loaded from disk ``datasets`` caches it there, keyed by the dataset's fingerprint (new when the
    annotations change), the tokenizer and max_length, so an unchanged dataset is tokenized once.
    """

    def encode(batch: dict) -> dict:
        segments = [batch["text"]] + ([batch["text_pair"]] if has_text_pair(batch) else [])
        encoded = tokenizer(*segments, truncation=True, max_length=max_length, return_length=True)
        encoded["truncated"] = [n > max_length for n in tokenizer(*segments, return_length=True)["length"]]
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


def has_text_pair(rows: Dataset | Mapping) -> bool:
    """Whether rows (a split or a batch) carry a second segment: a ``text_pair`` column with a value in it."""
    columns = rows.column_names if isinstance(rows, Dataset) else rows
    return "text_pair" in columns and any(pair is not None for pair in rows["text_pair"])


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
        report_to=list((cfg.get("logger") or {}).get("report_to") or []),
    )
    return TrainingArguments(**args), precision
