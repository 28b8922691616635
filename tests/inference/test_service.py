"""The REST service through FastAPI's test client, on a fake predictor: batching, limits, errors, readiness.

The real model behind the real server is tested in ``tests/commands/test_serve.py`` (slow tier).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from claimstance.errors import ConfigError  # noqa: E402
from claimstance.inference.bodies import ServiceSettings  # noqa: E402
from claimstance.inference.service import MicroBatcher, Overloaded, create_app  # noqa: E402

LABELS = ["commitment", "caution", "request", "none"]


class FakePredictor:
    """Predictor.predict's record shape; ``commitment`` for sentences with "will", scores from the length."""

    labels = LABELS
    backend = "fake"

    def __init__(self, gate: threading.Event | None = None, fail: bool = False, text_pair: bool = False):
        self.calls: list[list] = []
        self.gate, self.fail, self.text_pair = gate, fail, text_pair

    def predict(self, items, min_confidence=None):
        self.calls.append(list(items))
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail or "boom" in items:
            raise RuntimeError("the model broke")
        return [self.record(item) for item in items]

    @staticmethod
    def record(item) -> dict:
        text = item if isinstance(item, str) else item["text"] + " || " + item["text_pair"]
        score = 0.5 + min(len(text), 40) / 100
        label = "commitment" if "will" in text else "none"
        rest = (1 - score) / 3
        return {
            "text": text,
            "label": label,
            "score": score,
            "probabilities": {name: score if name == label else rest for name in LABELS},
            "abstained": False,
        }


def client_for(predictor, **limits) -> TestClient:
    return TestClient(create_app(lambda: predictor, ServiceSettings(**limits)), raise_server_exceptions=False)


def wait_ready(client: TestClient, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.01)


@pytest.fixture
def service():
    predictor = FakePredictor()
    with client_for(predictor, max_sentences=4, max_chars=50, max_text_chars=300, max_body_bytes=200_000) as client:
        wait_ready(client)
        yield client, predictor


def test_classify_answers_each_sentence_in_order_as_the_predictor_does(service):
    client, predictor = service
    sentences = ["We will cut taxes.", "Rain.", {"text": "It will rain."}]
    response = client.post("/v1/classify", json={"sentences": sentences})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert predictions == [FakePredictor.record(s) for s in ["We will cut taxes.", "Rain.", "It will rain."]]
    assert predictor.calls == [["We will cut taxes.", "Rain.", "It will rain."]]  # one pass, in order


def test_a_pair_model_gets_pairs_and_refuses_what_it_cannot_read():
    predictor = FakePredictor(text_pair=True)
    with client_for(predictor) as client:
        wait_ready(client)
        assert client.get("/readyz").json()["text_pair"] is True
        pair = {"text": "We will", "text_pair": "build it"}
        answered = client.post("/v1/classify", json={"sentences": [pair]})
        assert answered.status_code == 200 and answered.json()["predictions"][0]["text"] == "We will || build it"
        assert predictor.calls == [[pair]]  # pairs reach Predictor.predict as {"text", "text_pair"} dicts
        plain = client.post("/v1/classify", json={"sentences": [pair, "We will."]})
        assert (plain.status_code, plain.json()["field"]) == (422, "sentences[1].text_pair")
        article = client.post("/v1/tag", json={"text": "We will build it."})
        assert (article.status_code, article.json()["field"]) == (422, "text")
        assert "trained on text pairs" in article.json()["error"]


def test_min_confidence_abstains_per_request(service):
    client, _ = service
    body = {"sentences": ["Rain.", "We will cut taxes now, said the minister."]}  # scores 0.55 and 0.9
    loose = client.post("/v1/classify", json=body).json()["predictions"]
    strict = client.post("/v1/classify", json=body | {"min_confidence": 0.6}).json()["predictions"]
    assert [p["label"] for p in loose] == ["none", "commitment"]
    assert [(p["label"], p["abstained"]) for p in strict] == [(None, True), ("commitment", False)]
    assert strict[0]["probabilities"] == loose[0]["probabilities"]  # the probabilities stay


def test_tag_gives_rows_with_offsets_as_the_predict_command_does(service):
    client, predictor = service
    text = "Budget news\n\nWe will cut taxes. Rain is due."
    response = client.post("/v1/tag", json={"text": text, "doc": "a1"})
    assert response.status_code == 200
    rows = response.json()["rows"]
    assert [row["text"] for row in rows] == ["Budget news", "We will cut taxes.", "Rain is due."]
    assert all(text[row["start"] : row["end"]] == row["text"] for row in rows)
    assert [(row["doc"], row["paragraph"], row["sentence"], row["heading"]) for row in rows] == [
        ("a1", 0, 0, True),
        ("a1", 1, 1, False),
        ("a1", 1, 2, False),
    ]
    assert [row["label"] for row in rows] == ["none", "commitment", "none"]
    assert len(predictor.calls) == 1  # one pass for the article


def test_readiness_waits_for_the_model_and_requests_get_503_meanwhile():
    gate = threading.Event()

    def load():
        gate.wait(10)
        return FakePredictor()

    with TestClient(create_app(load, ServiceSettings(retry_after_s=3))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503
        early = client.post("/v1/classify", json={"sentences": ["We will."]})
        assert early.status_code == 503 and early.headers["Retry-After"] == "3"
        assert early.json()["error"] == "the model is loading"
        gate.set()
        wait_ready(client)
        assert client.get("/readyz").json()["labels"] == LABELS
        assert client.post("/v1/classify", json={"sentences": ["We will."]}).status_code == 200


def test_a_model_that_fails_to_load_is_reported_not_ready():
    def load():
        raise OSError("model.onnx is truncated")

    with TestClient(create_app(load, ServiceSettings())) as client:
        deadline = time.monotonic() + 10
        while (ready := client.get("/readyz").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ready == {"status": "failed", "error": "the model failed to load: model.onnx is truncated"}
        assert client.post("/v1/classify", json={"sentences": ["x"]}).status_code == 503


def test_a_failing_forward_pass_is_a_json_500_and_the_service_goes_on():
    predictor = FakePredictor(fail=True)
    with client_for(predictor) as client:
        wait_ready(client)
        response = client.post("/v1/classify", json={"sentences": ["x"]})
        assert response.status_code == 500 and "RuntimeError" in response.json()["error"]
        predictor.fail = False
        assert client.post("/v1/classify", json={"sentences": ["x"]}).status_code == 200


def test_a_request_that_breaks_a_shared_pass_fails_alone():
    predictor = FakePredictor()
    with client_for(predictor, max_wait_ms=300) as client:
        wait_ready(client)
        with ThreadPoolExecutor(4) as pool:
            texts = ["We will.", "boom", "Rain.", "It will."]
            answers = list(pool.map(lambda text: client.post("/v1/classify", json={"sentences": [text]}), texts))
    assert [a.status_code for a in answers] == [200, 500, 200, 200]
    assert any(len(call) > 1 for call in predictor.calls)  # they did share a pass first


BAD_CLASSIFY = [
    (b'{"sentences": ["a",', 400, "body", "malformed JSON"),
    (b"\xff\xfe", 400, "body", "malformed JSON"),
    (b"[" * 100_000, 400, "body", "nested too deeply"),
    (b'["a", "b"]', 422, "body", "must be a JSON object, got list"),
    (b"{}", 422, "sentences", "is required"),
    (b'{"sentences": "one sentence"}', 422, "sentences", "must be a list, got str"),
    (b'{"sentences": []}', 422, "sentences", "at least one sentence"),
    (b'{"sentences": ["a", "b", "c", "d", "e"]}', 422, "sentences", "5 sentences, at most 4 per request"),
    (b'{"sentences": ["a", "b", "c", 7]}', 422, "sentences[3]", "got int"),
    (b'{"sentences": ["a", null]}', 422, "sentences[1]", "got NoneType"),
    (b'{"sentences": ["a", "   "]}', 422, "sentences[1]", "must not be empty"),
    (b'{"sentences": ["a", "' + b"x" * 51 + b'"]}', 422, "sentences[1]", "51 characters, at most 50"),
    (b'{"sentences": [{"text": "a", "text_pair": 3}]}', 422, "sentences[0].text_pair", "must be a string, got int"),
    (b'{"sentences": [{"txt": "a"}]}', 422, "sentences[0].txt", "unknown field"),
    (b'{"sentences": [{"text_pair": "a"}]}', 422, "sentences[0].text", "must be a string, got NoneType"),
    (b'{"sentences": [{"text": "a", "text_pair": "b"}]}', 422, "sentences[0].text_pair", "trained on single sentences"),
    (b'{"sentence": ["a"]}', 422, "sentence", "unknown field"),
    (b'{"sentences": ["a"], "min_confidence": 1.5}', 422, "min_confidence", "in (0, 1)"),
    (b'{"sentences": ["a"], "min_confidence": "high"}', 422, "min_confidence", "in (0, 1)"),
    (b'{"sentences": ["a"], "min_confidence": true}', 422, "min_confidence", "in (0, 1)"),
]


@pytest.mark.parametrize(("body", "status", "where", "message"), BAD_CLASSIFY)
def test_bad_classify_bodies_get_a_4xx_naming_the_field(service, body, status, where, message):
    client, predictor = service
    response = client.post("/v1/classify", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["field"] == where
    assert response.json()["error"].startswith(f"{where}: ") and message in response.json()["error"]
    assert predictor.calls == []  # refused before the model


BAD_TAG = [
    ({}, "text", "is required"),
    ({"text": 12}, "text", "must be a string, got int"),
    ({"text": "x" * 301}, "text", "301 characters, at most 300"),
    ({"text": "We will go. They said no. It rained. She left. He stayed."}, "text", "5 sentences, at most 4 per request"),
    ({"text": "A.", "layout": "columns"}, "layout", "must be one of paragraphs, lines"),
    ({"text": "A.", "doc": ["x"]}, "doc", "at most 200 characters"),
    ({"text": "A.", "min_confidence": 0}, "min_confidence", "in (0, 1)"),
]


@pytest.mark.parametrize(("body", "where", "message"), BAD_TAG)
def test_bad_tag_bodies_get_a_422_naming_the_field(service, body, where, message):
    client, predictor = service
    response = client.post("/v1/tag", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == where and message in response.json()["error"]
    assert predictor.calls == []


def test_an_oversized_body_gets_413_whether_declared_or_streamed(service):
    client, predictor = service
    big = b'{"sentences": ["' + b"x" * 300_000 + b'"]}'
    declared = client.post("/v1/classify", content=big, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json() == {"error": "body: larger than 200000 bytes", "field": "body"}
    streamed = client.post("/v1/classify", content=iter([big[:150_000], big[150_000:]]))  # chunked: no Content-Length
    assert streamed.status_code == 413 and streamed.json()["field"] == "body"
    assert predictor.calls == []


def test_unknown_routes_and_methods_get_json_errors(service):
    client, _ = service
    assert client.get("/v2/classify").json() == {"error": "Not Found", "field": None}
    assert client.get("/v1/classify").status_code == 405


def test_concurrent_requests_share_one_forward_pass_up_to_batch_size():
    predictor = FakePredictor()
    with client_for(predictor, batch_size=8, max_wait_ms=300) as client:
        wait_ready(client)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda n: client.post("/v1/classify", json={"sentences": [f"s{n}"]}), range(12)))
    assert [a.json()["predictions"][0]["text"] for a in answers] == [f"s{n}" for n in range(12)]  # each its own answer
    sizes = [len(call) for call in predictor.calls]
    assert sum(sizes) == 12 and max(sizes) <= 8 and len(sizes) < 12  # gathered, never above batch_size


def run_batcher(test) -> None:
    """Run ``test(batcher factory)`` in an event loop with a model thread, as the service does."""
    with ThreadPoolExecutor(1) as executor:
        asyncio.run(test(lambda predictor, **kw: MicroBatcher(predictor.predict, executor, **kw)))


def test_a_full_queue_refuses_with_overloaded_and_closing_answers_what_was_queued():
    gate = threading.Event()
    predictor = FakePredictor(gate=gate)

    async def scenario(make):
        batcher = make(predictor, batch_size=2, max_wait_ms=0, max_queue=3)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(["a"]))  # taken into a pass that waits on the gate
        while not predictor.calls:
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.submit(["b", "c"])), asyncio.ensure_future(batcher.submit(["d"]))]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match=r"queue is full \(3 sentences waiting, at most 3\)"):
            await batcher.submit(["e"])
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="shutting down"):
            await batcher.submit(["f"])
        gate.set()
        await closing
        answers = [await running] + [await job for job in queued]
        assert [[r["text"] for r in answer] for answer in answers] == [["a"], ["b", "c"], ["d"]]

    run_batcher(scenario)


def test_the_batcher_waits_at_most_max_wait_for_company():
    predictor = FakePredictor()

    async def scenario(make):
        batcher = make(predictor, batch_size=64, max_wait_ms=50)
        batcher.start()
        start = time.monotonic()
        await batcher.submit(["alone"])
        waited = time.monotonic() - start
        await batcher.close()
        assert 0.04 <= waited < 2

    run_batcher(scenario)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
        ({"max_wait_ms": -1}, "max_wait_ms must be a number >= 0"),
        ({"max_queue": 10, "max_sentences": 20}, "max_queue (10) must be at least max_sentences (20)"),
        ({"min_confidence": 2}, "min_confidence must be a number in (0, 1)"),
    ],
)
def test_bad_service_settings_name_the_key(values, message):
    with pytest.raises(ConfigError) as err:
        ServiceSettings(**values)
    assert message in str(err.value)
