"""The request bodies of the REST service: parsed and checked against the limits, each refusal naming its field.

Plain Python (no web framework), so the rules are tested without a server; ``service`` maps a
:class:`RequestError` to its HTTP status and a JSON error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from claimstance.errors import ConfigError
from claimstance.inference.articles import LAYOUTS
from claimstance.inference.predictor import check_min_confidence

Item = str | dict  # a sentence, or {"text", "text_pair"}


@dataclass(frozen=True)
class ServiceSettings:
    """Batching and request limits (``configs/serve.yaml`` documents each)."""

    batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_body_bytes: int = 1_000_000
    max_sentences: int = 256
    max_chars: int = 2000
    max_text_chars: int = 100_000
    min_confidence: float | None = None
    retry_after_s: int = 1

    def __post_init__(self):
        for key in ("batch_size", "max_queue", "max_body_bytes", "max_sentences", "max_chars", "max_text_chars", "retry_after_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.max_wait_ms, (int, float)) or self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be a number >= 0, got {self.max_wait_ms!r}")
        if self.max_queue < self.max_sentences:
            raise ConfigError(f"max_queue ({self.max_queue}) must be at least max_sentences ({self.max_sentences})")
        check_min_confidence(self.min_confidence)


class RequestError(Exception):
    """A request the service refuses: HTTP status, the field at fault (``sentences[3]``, ``body``) and why."""

    def __init__(self, status: int, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.status, self.where = status, where


def read_json(body: bytes) -> dict:
    """The request body as a JSON object; malformed JSON is a 400, anything but an object a 422."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(400, "body", f"malformed JSON ({err})") from err
    except RecursionError as err:
        raise RequestError(400, "body", "JSON nested too deeply") from err
    if not isinstance(value, dict):
        raise RequestError(422, "body", f"must be a JSON object, got {type(value).__name__}")
    return value


def _check_keys(body: dict, allowed: Sequence[str], where: str = "") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(422, f"{where}{unknown[0]}", f"unknown field; expected {', '.join(allowed)}")


def _text(value: Any, where: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise RequestError(422, where, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RequestError(422, where, "must not be empty")
    if len(value) > max_chars:
        raise RequestError(422, where, f"{len(value)} characters, at most {max_chars}")
    return value


def _min_confidence(body: dict, default: float | None) -> float | None:
    if "min_confidence" not in body or body["min_confidence"] is None:
        return default
    value = body["min_confidence"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise RequestError(422, "min_confidence", f"must be a number in (0, 1) or null, got {value!r}")
    return float(value)


def parse_classify(body: dict, settings: ServiceSettings, pairs: bool = False) -> tuple[list[Item], float | None]:
    """The sentences and threshold of a ``/v1/classify`` body, each refusal naming its field.

    ``pairs``: the model was trained on ``{"text", "text_pair"}`` pairs, so every item needs its pair; a model
    trained on single sentences refuses a ``text_pair``. Checked here, per request, so that one wrong request
    never fails the forward pass it would share with others.
    """
    _check_keys(body, ("sentences", "min_confidence"))
    sentences = body.get("sentences")
    if not isinstance(sentences, list):
        missing = "sentences" not in body
        raise RequestError(422, "sentences", "is required" if missing else f"must be a list, got {type(sentences).__name__}")
    if not sentences:
        raise RequestError(422, "sentences", "must hold at least one sentence")
    if len(sentences) > settings.max_sentences:
        raise RequestError(422, "sentences", f"{len(sentences)} sentences, at most {settings.max_sentences} per request")
    items: list[Item] = []
    for number, sentence in enumerate(sentences):
        where = f"sentences[{number}]"
        if isinstance(sentence, str):
            sentence = {"text": sentence}
            text = _text(sentence["text"], where, settings.max_chars)
        elif isinstance(sentence, dict):
            _check_keys(sentence, ("text", "text_pair"), f"{where}.")
            text = _text(sentence.get("text"), f"{where}.text", settings.max_chars)
        else:
            raise RequestError(422, where, f"must be a string or a {{text, text_pair}} object, got {type(sentence).__name__}")
        pair = sentence.get("text_pair")
        if pair is not None:
            pair = _text(pair, f"{where}.text_pair", settings.max_chars)
        if pairs and pair is None:
            raise RequestError(422, f"{where}.text_pair", 'is required: this model was trained on pairs {"text", "text_pair"}')
        if not pairs and pair is not None:
            raise RequestError(422, f"{where}.text_pair", "this model was trained on single sentences; drop text_pair")
        items.append({"text": text, "text_pair": pair} if pairs else text)
    return items, _min_confidence(body, settings.min_confidence)


def parse_tag(body: dict, settings: ServiceSettings) -> tuple[str, str, str, float | None]:
    """The article text, its layout, its document name and the threshold of a ``/v1/tag`` body."""
    _check_keys(body, ("text", "layout", "doc", "min_confidence"))
    if "text" not in body:
        raise RequestError(422, "text", "is required")
    text = _text(body["text"], "text", settings.max_text_chars)
    layout = body.get("layout") or "paragraphs"
    if layout not in LAYOUTS:
        raise RequestError(422, "layout", f"must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    doc = body.get("doc") or "text"
    if not isinstance(doc, str) or len(doc) > 200:
        raise RequestError(422, "doc", "must be a string of at most 200 characters")
    return text, layout, doc, _min_confidence(body, settings.min_confidence)


def apply_threshold(record: dict, min_confidence: float | None) -> dict:
    """A prediction made without a threshold, as ``Predictor.predict(..., min_confidence)`` would give it.

    One forward pass serves requests with different thresholds, so abstention is decided per request afterwards,
    on the score as returned (rounded to 6 places).
    """
    if min_confidence is None or record["score"] >= min_confidence:
        return record
    return record | {"label": None, "abstained": True}
