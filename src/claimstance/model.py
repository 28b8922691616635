"""Model factories chosen by ``configs/model/*.yaml`` through ``_target_``.

Each returns ``(model, tokenizer)`` with the label names written into ``id2label``/``label2id``,
so the exported ``config.json`` carries them and nothing downstream hard-codes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from claimstance.config import UserError


class ModelLoadError(UserError, OSError):
    """A base model that cannot be loaded, with what to do about it."""


def label_maps(labels: Sequence[str]) -> dict:
    """``id2label``/``label2id`` keyword arguments for a model config."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def freeze_lower_layers(model: PreTrainedModel, layers: int) -> None:
    """Keep the embeddings and the first ``layers`` encoder layers as pre-trained (no gradient, no update).

    Layers are found by the ``encoder.layer.<i>.`` parameter names that BERT-like models share.
    """
    model.get_input_embeddings().weight.requires_grad_(False)
    frozen = 0
    for name, parameter in model.named_parameters():
        parts = name.split("encoder.layer.", 1)
        if len(parts) == 2 and int(parts[1].split(".", 1)[0]) < layers:
            parameter.requires_grad_(False)
            frozen += 1
    if layers and not frozen:
        raise ModelLoadError(f"model.freeze_layers={layers}: this model has no 'encoder.layer.<i>' parameters to freeze")


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
