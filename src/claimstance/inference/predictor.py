"""Fast batched prediction from an exported model folder, and tagging of whole documents.

Sentences (or ``{"text", "text_pair"}`` pairs, for a model trained on pairs) are tokenized with the export's
own ``tokenizer.json`` (the ``tokenizers`` library, not ``transformers``), sorted by token count and padded
per batch. ``backend=auto`` runs the fastest backend that keeps fp32's answers, as recorded for this CPU in
the export's ``backends.json`` (``inference.backends``), else ONNX fp32 when exported, else PyTorch. Neither
torch nor transformers is imported on the ONNX paths, so a short article is tagged in about a second from a
cold start. Probabilities are temperature-scaled with the export's ``calibration.json``; ``min_confidence``
turns unsure answers into abstentions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path

import numpy as np

from claimstance.config import default_threads
from claimstance.errors import ConfigError, UserError
from claimstance.inference.artifacts import ExportError, check_export, read_temperature
from claimstance.inference.backends import BF16_BACKEND, CANDIDATES, ONNX_FILES, choose_backend, cpu_has_bf16

log = logging.getLogger(__name__)

BACKENDS = ("auto", *sorted(CANDIDATES))
MAX_TOKENS = 512
Text = str | Mapping[str, str]  # a sentence, or {"text": ..., "text_pair": ...} for a model trained on pairs


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (numpy only: scipy would add half a second to start-up)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def check_min_confidence(value: float | None) -> float | None:
    """``min_confidence`` is None (always answer) or a probability strictly between 0 and 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"min_confidence must be a number in (0, 1) or null, got {value!r}")
    return float(value)


class Predictor:
    """Claim labels and calibrated probabilities for sentences, from a folder written by ``claimstance``.

    ``backend``: ``auto`` (the fastest qualified backend recorded for this CPU, else ONNX fp32 if exported, else
    torch), ``onnx``, ``onnx-int8`` (dynamic), ``onnx-int8-static`` (QDQ), ``torch`` or ``torch-bf16`` (autocast).
    ``calibrated``: divide the logits by the export's fitted temperature (labels never change, only scores).
    """

    def __init__(
        self,
        model_dir: str | Path,
        backend: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
        threads: int | None = None,
        onnx_file: str | None = None,
        expected_labels: Sequence[str] | None = None,
        calibrated: bool = True,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.model_dir = Path(model_dir)
        self.labels = check_export(self.model_dir, expected_labels)
        self.text_pair = bool(json.loads((self.model_dir / "config.json").read_text(encoding="utf-8")).get("text_pair"))
        self.temperature = read_temperature(self.model_dir) if calibrated else 1.0
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        self._tokenizer, self._pad_id, limit = self._load_tokenizer()
        self.max_length = min(max_length or limit, limit)
        self._tokenizer.enable_truncation(self.max_length)
        if backend == "auto":
            backend, reason = choose_backend(self.model_dir)
            log.info("backend=auto: %s (%s)", backend, reason)
        if backend == BF16_BACKEND and not cpu_has_bf16():
            log.warning("backend=%s: this CPU has no avx512_bf16 or AMX, so bf16 is emulated and slow", backend)
        self.backend = backend
        if backend in ONNX_FILES:
            self._session = self._onnx_session(self.model_dir / (onnx_file or ONNX_FILES[backend]))
        else:
            self._model = self._torch_model()

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, **kwargs) -> Predictor:
        """Same as the constructor; named like the Hugging Face loaders."""
        return cls(model_dir, **kwargs)

    def _load_tokenizer(self):
        """The export's fast tokenizer from ``tokenizer.json``, its padding id and length limit."""
        from tokenizers import Tokenizer

        path = self.model_dir / "tokenizer.json"
        if not path.is_file():
            raise ExportError(f"{self.model_dir}: tokenizer.json is missing; re-export the model with a fast tokenizer")
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_padding()
        settings = json.loads((self.model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        pad_id = tokenizer.token_to_id(str(settings.get("pad_token") or "[PAD]")) or 0
        limit = min(int(settings.get("model_max_length") or MAX_TOKENS), MAX_TOKENS)
        return tokenizer, pad_id, limit

    def _onnx_session(self, path: Path):
        import onnxruntime as ort

        if not path.is_file():
            raise ExportError(
                f"{path}: no ONNX model in this export; use backend=torch or re-export with export.onnx=true "
                "(export.backends=true also writes the int8 models)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input_names = [i.name for i in session.get_inputs()]
        return session

    def _torch_model(self):
        import torch
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(self.threads)
        model = AutoModelForSequenceClassification.from_pretrained(str(self.model_dir)).eval()
        self._input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if model.config.type_vocab_size else [])
        return model

    def encode(self, texts: Sequence[Text]) -> dict[str, np.ndarray]:
        """The model inputs for ``texts`` as one batch, padded to the longest."""
        return self._batch(self._encode(texts))

    def _encode(self, texts: Sequence[Text]) -> list:
        """Token encodings of sentences, or of ``(text, text_pair)`` with the pair as the second segment."""
        return self._tokenizer.encode_batch([self._segments(index, text) for index, text in enumerate(texts)])

    def _segments(self, index: int, text: Text) -> str | tuple[str, str]:
        """``text`` as the tokenizer takes it, checked against what the model was trained on."""
        if isinstance(text, str):
            if self.text_pair:
                raise UserError(
                    f"input {index}: this model was trained on text pairs, so each input needs a text_pair; "
                    'pass {"text": ..., "text_pair": ...} instead of a plain string'
                )
            return text
        if not isinstance(text, Mapping):
            raise UserError(f'input {index}: expected a string or {{"text", "text_pair"}}, got {type(text).__name__}')
        for field in ("text", "text_pair") if self.text_pair else ("text",):
            if not isinstance(text.get(field), str):
                raise UserError(f"input {index}: field {field!r} is missing or not a string")
        if not self.text_pair:
            if text.get("text_pair") is not None:
                raise UserError(f"input {index}: this model was trained on single sentences; drop text_pair")
            return text["text"]
        return text["text"], text["text_pair"]

    def _batch(self, encodings: Sequence) -> dict[str, np.ndarray]:
        """Token ids, attention mask and segment ids of a batch, padded to its longest sentence."""
        width = max(len(e.ids) for e in encodings)
        arrays = {
            name: np.zeros((len(encodings), width), dtype=np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")
        }
        arrays["input_ids"].fill(self._pad_id)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = 1
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        return {name: arrays[name] for name in self._input_names}

    def _logits(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.backend in ONNX_FILES:
            return self._session.run(["logits"], dict(batch))[0]
        import torch

        inputs = {name: torch.from_numpy(array) for name, array in batch.items()}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.backend == BF16_BACKEND):
            return self._model(**inputs).logits.float().numpy()

    def predict_logits(self, texts: Sequence[Text]) -> np.ndarray:
        """Raw logits (rows in input order, columns in label order).

        The texts are tokenized once and sorted by token count, so each batch is padded only to its
        own longest sentence: sorting by characters instead leaves about a fifth of the compute on padding.
        """
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return logits
        encodings = self._encode(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self.batch_size):
            picked = order[start : start + self.batch_size]
            logits[picked] = self._logits(self._batch([encodings[i] for i in picked]))
        return logits

    def predict_proba(self, texts: Sequence[Text]) -> np.ndarray:
        """Calibrated probabilities (rows in input order, columns in label order)."""
        return softmax(self.predict_logits(texts) / self.temperature).astype(np.float32)

    def predict(self, texts: Sequence[Text] | Text, min_confidence: float | None = None) -> list[dict]:
        """``{"text", "label", "score", "probabilities", "abstained"}`` for each sentence, in input order.

        Below ``min_confidence`` the label is None and ``abstained`` is true (the probabilities stay). A pair's
        record also holds its ``text_pair``.
        """
        if isinstance(texts, (str, Mapping)):
            texts = [texts]
        threshold = check_min_confidence(min_confidence)
        return [self._record(text, row, threshold) for text, row in zip(texts, self.predict_proba(texts), strict=True)]

    def predict_stream(
        self, texts: Iterable[Text], chunk_size: int = 4096, min_confidence: float | None = None
    ) -> Iterator[dict]:
        """Predict an iterable of any length holding at most ``chunk_size`` sentences at a time."""
        iterator = iter(texts)
        while chunk := list(islice(iterator, chunk_size)):
            yield from self.predict(chunk, min_confidence)

    @staticmethod
    def _texts(text: Text) -> dict:
        """The record's ``text``, and ``text_pair`` when the input had one."""
        if isinstance(text, str):
            return {"text": text}
        return {"text": text["text"]} | ({"text_pair": text["text_pair"]} if text.get("text_pair") is not None else {})

    def _record(self, text: Text, row: np.ndarray, min_confidence: float | None) -> dict:
        best = int(row.argmax())
        abstained = min_confidence is not None and float(row[best]) < min_confidence
        return {
            **self._texts(text),
            "label": None if abstained else self.labels[best],
            "score": round(float(row[best]), 6),
            "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)},
            "abstained": abstained,
        }
