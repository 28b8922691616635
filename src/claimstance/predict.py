"""Fast batched prediction from an exported model folder, and tagging of whole documents.

Sentences are tokenized with the export's own ``tokenizer.json`` (the ``tokenizers`` library, not
``transformers``), sorted by token count and padded per batch; ONNX Runtime runs the model when the folder
holds ``model.onnx``, else PyTorch. Neither torch nor transformers is imported on the ONNX path, so a
short article is tagged in about a second from a cold start. Probabilities are temperature-scaled with
the export's ``calibration.json``; ``min_confidence`` turns unsure answers into abstentions.
"""

from __future__ import annotations

import glob
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import groupby, islice
from pathlib import Path

import numpy as np

from claimstance.artifacts import ONNX_FILE, ONNX_INT8_FILE, ExportError, check_export, read_temperature
from claimstance.atomic import staged_file
from claimstance.config import ConfigError, default_threads, exits_cleanly
from claimstance.report import document_summary, write_html
from claimstance.textio import InputError, iter_jsonl, iter_lines, read_text

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
INPUT_FORMATS = ("auto", "lines", "jsonl", "article")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".jsonl")  # what a folder given as input= is searched for
MAX_TOKENS = 512


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

    ``backend``: ``auto`` (ONNX if exported, else torch), ``onnx``, ``onnx-int8`` or ``torch``.
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
        self.temperature = read_temperature(self.model_dir) if calibrated else 1.0
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        self._tokenizer, self._pad_id, limit = self._load_tokenizer()
        self.max_length = min(max_length or limit, limit)
        self._tokenizer.enable_truncation(self.max_length)
        if backend == "auto":
            backend = "onnx" if (self.model_dir / ONNX_FILE).is_file() else "torch"
        if backend == "onnx-int8":
            backend, onnx_file = "onnx", ONNX_INT8_FILE
        self.backend = backend
        if backend == "onnx":
            self._session = self._onnx_session(self.model_dir / (onnx_file or ONNX_FILE))
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
            raise ExportError(f"{path}: no ONNX model in this export; use backend=torch or re-export with export.onnx=true")
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

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The model inputs for ``texts`` as one batch, padded to the longest."""
        return self._batch(self._tokenizer.encode_batch(list(texts)))

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
        if self.backend == "onnx":
            return self._session.run(["logits"], dict(batch))[0]
        import torch

        with torch.inference_mode():
            return self._model(**{name: torch.from_numpy(array) for name, array in batch.items()}).logits.float().numpy()

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits (rows in input order, columns in label order).

        The texts are tokenized once and sorted by token count, so each batch is padded only to its
        own longest sentence: sorting by characters instead leaves about a fifth of the compute on padding.
        """
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return logits
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self.batch_size):
            picked = order[start : start + self.batch_size]
            logits[picked] = self._logits(self._batch([encodings[i] for i in picked]))
        return logits

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities (rows in input order, columns in label order)."""
        return softmax(self.predict_logits(texts) / self.temperature).astype(np.float32)

    def predict(self, texts: Sequence[str] | str, min_confidence: float | None = None) -> list[dict]:
        """``{"text", "label", "score", "probabilities", "abstained"}`` for each sentence, in input order.

        Below ``min_confidence`` the label is None and ``abstained`` is true (the probabilities stay).
        """
        if isinstance(texts, str):
            texts = [texts]
        threshold = check_min_confidence(min_confidence)
        return [self._record(text, row, threshold) for text, row in zip(texts, self.predict_proba(texts), strict=True)]

    def predict_stream(self, texts: Iterable[str], chunk_size: int = 4096, min_confidence: float | None = None) -> Iterator[dict]:
        """Predict an iterable of any length holding at most ``chunk_size`` sentences at a time."""
        iterator = iter(texts)
        while chunk := list(islice(iterator, chunk_size)):
            yield from self.predict(chunk, min_confidence)

    def _record(self, text: str, row: np.ndarray, min_confidence: float | None) -> dict:
        best = int(row.argmax())
        abstained = min_confidence is not None and float(row[best]) < min_confidence
        return {
            "text": text,
            "label": None if abstained else self.labels[best],
            "score": round(float(row[best]), 6),
            "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)},
            "abstained": abstained,
        }


@dataclass
class Document:
    """One input document: its name and its sentences, each a dict of position fields, passthrough fields and ``text``.

    ``model_texts`` are what the model reads (wrapped lines joined); ``rows[i]["text"]`` is the exact slice of the input.
    """

    name: str
    rows: list[dict] = field(default_factory=list)
    model_texts: list[str] = field(default_factory=list)


def input_files(spec: str | Path) -> list[Path]:
    """The files ``input=`` names: a file, a folder (its text files, recursively, hidden ones skipped) or a glob."""
    text = str(spec)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        texts = [p for p in found if p.suffix.lower() in TEXT_SUFFIXES]
        if not texts:
            others = f"; it holds {len(found)} other file(s), e.g. {found[0].name}" if found else "; it is empty"
            raise InputError(f"{path}: no text files ({', '.join(TEXT_SUFFIXES)}) in this folder{others}")
        return texts
    if glob.has_magic(text):
        matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not matched:
            raise InputError(f"{text}: the pattern matches no files")
        return matched
    raise InputError(f"{path}: input file does not exist")


def _format_of(path: Path, input_format: str) -> str:
    if input_format not in INPUT_FORMATS:
        raise ConfigError(f"input_format must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
    if input_format == "auto":
        return "jsonl" if path.suffix == ".jsonl" else "lines"
    return input_format


def _segmented(name: str, text: str, layout: str, extra: Mapping | None = None) -> Document:
    """A document from running text: sentences with paragraph, index, exact offsets and heading flag."""
    from claimstance.articles import segment

    document = Document(name)
    for piece in segment(text, layout=layout):
        document.rows.append(
            {
                **(extra or {}),
                "doc": name,
                "paragraph": piece.paragraph,
                "sentence": piece.sentence,
                "start": piece.start,
                "end": piece.end,
                "heading": piece.heading,
                "text": piece.text,
            }
        )
        document.model_texts.append(piece.model_text)
    return document


def document_name(path: Path, spec: str | Path) -> str:
    """How rows name their file: relative to a folder given as ``input=``, else as found (a file's own name)."""
    root = Path(spec)
    if root.is_dir():
        return path.relative_to(root).as_posix()
    return path.name if root == path else str(path)


def read_documents(
    path: Path, input_format: str = "auto", layout: str = "paragraphs", name: str | None = None
) -> Iterator[Document]:
    """The documents of one file.

    ``lines`` and ``article`` files are one document each (``lines`` = one sentence per line); a ``.jsonl``
    file read as ``jsonl`` is one document of sentences (its rows' fields pass through), read as ``article``
    each row is a document named by its ``id``.
    """
    kind = _format_of(path, input_format)
    name = name or path.name
    if kind in ("lines", "article"):
        if path.suffix == ".jsonl" and kind == "article":
            for number, record in iter_jsonl(path):
                text = _text_field(record, path, number)
                extra = {k: v for k, v in record.items() if k != "text"}
                yield _segmented(str(record.get("id", f"{name}:{number}")), text, layout, extra)
            return
        document = _segmented(name, read_text(path), "lines" if kind == "lines" else layout)
        if not document.rows:
            raise InputError(f"{path}: no sentences in the file")
        yield document
        return
    document = Document(name)
    for number, record in iter_jsonl(path):
        text = _text_field(record, path, number)
        document.rows.append({**record, "doc": record.get("doc", name), "sentence": len(document.rows), "line": number})
        document.model_texts.append(" ".join(text.split()))
    if not document.rows:
        raise InputError(f"{path}: no sentences in the file")
    yield document


def _text_field(record: Mapping, path: Path, number: int) -> str:
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{path}:{number}: needs a non-empty string field 'text'")
    return text


def read_inputs(path: str | Path, input_format: str = "auto") -> Iterator[str]:
    """Stream the sentences of one file as the model reads them, for callers that need no positions.

    ``lines`` files are read one line at a time (any size); ``jsonl`` and ``article`` go through
    :func:`read_documents`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: input file does not exist")
    kind = _format_of(path, input_format)
    if kind != "lines":
        for document in read_documents(path, kind):
            yield from document.model_texts
        return
    seen = False
    for _, line in iter_lines(path):
        if line.strip():
            seen = True
            yield line.strip()
    if not seen:
        raise InputError(f"{path}: no sentences in the file")


PREDICTION_KEYS = ("label", "score", "probabilities", "abstained")


def _merge(row: Mapping, prediction: Mapping) -> dict:
    """The input row with the prediction added; an input field named like a prediction key is kept as ``input_<key>``."""
    merged = {(f"input_{k}" if k in PREDICTION_KEYS else k): v for k, v in row.items()}
    return merged | {key: prediction[key] for key in PREDICTION_KEYS}


def tag_documents(
    predictor: Predictor, documents: Iterable[Document], chunk_size: int = 4096, min_confidence: float | None = None
) -> Iterator[tuple[int, str, list[dict]]]:
    """``(document number, name, rows with predictions)`` in input order, ``chunk_size`` sentences at a time.

    Sentences are gathered across documents until ``chunk_size`` are waiting, then predicted together, so
    many short articles fill batches as well as one long file does; a document longer than that comes out
    in several consecutive pieces with the same number, so memory stays bounded whatever the input size.
    """
    waiting: list[tuple[int, str, dict, str]] = []

    def flush() -> Iterator[tuple[int, str, list[dict]]]:
        predictions = predictor.predict([text for *_, text in waiting], min_confidence)
        pieces = groupby(zip(waiting, predictions, strict=True), key=lambda item: item[0][:2])
        for (number, name), piece in pieces:
            yield number, name, [_merge(row, prediction) for (_, _, row, _), prediction in piece]

    for number, document in enumerate(documents):
        for row, text in zip(document.rows, document.model_texts, strict=True):
            waiting.append((number, document.name, row, text))
            if len(waiting) >= chunk_size:
                yield from flush()
                waiting = []
    if waiting:
        yield from flush()


def _slim(row: Mapping) -> dict:
    """What a document summary reads of a row: a few fields instead of the whole record (bounded memory on big files)."""
    return {key: row[key] for key in ("text", *PREDICTION_KEYS)}


def write_jsonl_rows(rows: Iterable[dict], handle) -> int:
    """Write rows as JSON lines to an open text handle; return how many."""
    count = 0
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def _documents(cfg, files: Sequence[Path]) -> Iterator[Document]:
    from tqdm.auto import tqdm

    for path in tqdm(files, desc="Tagging", unit="doc", disable=len(files) < 2, file=sys.stderr):
        yield from read_documents(path, cfg.input_format, cfg.layout, document_name(path, cfg.input))


@exits_cleanly
def run(cfg) -> int:
    """``scripts/predict.py``: tag ``text=`` or the documents of ``input=``; JSON lines, an HTML report, a summary."""
    if (cfg.text is None) == (cfg.input is None):
        raise InputError('give exactly one of text="..." or input=FILE|FOLDER|GLOB')
    if cfg.text is not None and not str(cfg.text).strip():
        raise InputError("text is empty; give a sentence to label")
    min_confidence = check_min_confidence(cfg.min_confidence)
    files = input_files(cfg.input) if cfg.input is not None else []
    predictor = Predictor(
        cfg.model_dir, backend=cfg.backend, batch_size=cfg.batch_size, threads=cfg.threads, expected_labels=cfg.expected_labels
    )
    if cfg.text is not None:
        documents: Iterable[Document] = [_segmented("text", str(cfg.text), "lines")]
    else:
        documents = _documents(cfg, files)
    tagged = tag_documents(predictor, documents, cfg.chunk_size, min_confidence)
    no_claim = cfg.no_claim_label if cfg.no_claim_label in predictor.labels else None
    documents_seen: list[dict] = []  # one entry per document, with its rows for the HTML report and the summary
    summary_lines: list[str] = []
    summarise = bool(cfg.summary) and cfg.output is not None

    def close(document: dict | None) -> None:
        if document is not None and summarise:
            summary_lines.append(document_summary(document, predictor.labels, no_claim_label=no_claim))
        if document is not None and cfg.html is None:
            document["rows"] = []  # the summary is written: only the HTML report needs rows after this

    count = 0
    current: dict | None = None
    with staged_file(Path(cfg.output)) if cfg.output is not None else nullcontext(sys.stdout) as sink:
        for number, name, rows in tagged:
            count += write_jsonl_rows(rows, sink)
            if current is None or current["number"] != number:
                close(current)
                current = {"number": number, "doc": name, "rows": []}
                documents_seen.append(current)
            current["rows"].extend(rows if cfg.html is not None else map(_slim, rows))
        close(current)
    if cfg.output is not None:
        log.info("Wrote %d sentence(s) of %d document(s) to %s", count, len(documents_seen), cfg.output)
    if cfg.html is not None:
        title = f"claimstance: {cfg.input if cfg.input is not None else 'text'}"
        write_html(Path(cfg.html), documents_seen, predictor.labels, no_claim_label=no_claim, title=title)
        log.info("HTML report: %s", cfg.html)
    if summary_lines:
        print("\n\n".join(summary_lines))
    return count
