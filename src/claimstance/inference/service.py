"""The REST service behind ``claimstance-serve``: FastAPI routes and a micro-batcher.

Concurrent requests are gathered into one ``Predictor.predict`` call: the batcher waits at most
``max_wait_ms`` after the first queued request for ``batch_size`` sentences, and refuses new work (503 with
Retry-After) once ``max_queue`` sentences are waiting, so a burst never grows memory or latency without bound.
The model runs on one thread of its own; the event loop only parses, validates and answers (responses are
built as ``JSONResponse`` directly, skipping FastAPI's field-by-field encoder of returned dicts). Only the serve
command and its tests import this module (fastapi is an optional extra).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from claimstance.inference.bodies import (
    Item,
    RequestError,
    ServiceSettings,
    apply_threshold,
    parse_classify,
    parse_tag,
    read_json,
)
from claimstance.inference.documents import _segmented, tag_documents

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The queue is full or the service is stopping: answered 503 with Retry-After."""


def error_response(status: int, message: str, where: str | None = None, retry_after: int | None = None) -> JSONResponse:
    """Every error the service gives has this shape: ``{"error": message, "field": where}``."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message, "field": where}, status_code=status, headers=headers)


# ---------------------------------------------------------------- micro-batching


@dataclass
class _Job:
    items: list[Item]
    future: asyncio.Future
    arrived: float


@dataclass
class MicroBatcher:
    """Gathers the sentences of concurrent requests into one ``predict`` call on a model thread.

    ``predict(items) -> records`` is called with at least one whole request and, when several wait, with whole
    requests up to ``batch_size`` sentences. ``close()`` answers everything still queued before it returns.
    """

    predict: Callable[[list[Item]], list[dict]]
    executor: ThreadPoolExecutor
    batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    batches: int = 0  # forward passes so far (for tests and logs)
    _jobs: deque = field(default_factory=deque)
    _waiting: int = 0  # sentences queued, not yet in a forward pass
    _closing: bool = False
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="claimstance-batcher")

    async def submit(self, items: list[Item]) -> list[dict]:
        """The predictions for ``items``, in order, once their batch has run."""
        if self._closing:
            raise Overloaded("the service is shutting down")
        if self._waiting + len(items) > self.max_queue:
            raise Overloaded(f"the queue is full ({self._waiting} sentences waiting, at most {self.max_queue})")
        loop = asyncio.get_running_loop()
        job = _Job(list(items), loop.create_future(), loop.time())
        self._jobs.append(job)
        self._waiting += len(items)
        self._wakeup.set()
        return await job.future

    async def close(self) -> None:
        """Stop taking requests, finish the queued ones, stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker

    async def _wait(self, timeout: float) -> None:
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._jobs or not self._closing:
            if not self._jobs:
                await self._wait(3600)
                continue
            deadline = self._jobs[0].arrived + self.max_wait_ms / 1000
            while self._waiting < self.batch_size and not self._closing and loop.time() < deadline:
                await self._wait(deadline - loop.time())
            jobs = [self._jobs.popleft()]
            size = len(jobs[0].items)
            while self._jobs and size + len(self._jobs[0].items) <= self.batch_size:
                jobs.append(self._jobs.popleft())
                size += len(jobs[-1].items)
            items = [item for job in jobs for item in job.items]
            self._waiting -= len(items)
            try:
                records = await loop.run_in_executor(self.executor, self.predict, items)
            except Exception:  # one request's input may have broken the pass: run each alone, so only it fails
                log.exception("prediction failed for a batch of %d request(s); retrying them one by one", len(jobs))
                await self._one_by_one(jobs)
                continue
            self.batches += 1
            start = 0
            for job in jobs:
                if not job.future.done():  # a client that went away has a cancelled future
                    job.future.set_result(records[start : start + len(job.items)])
                start += len(job.items)

    async def _one_by_one(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        for job in jobs:
            try:
                records = await loop.run_in_executor(self.executor, self.predict, job.items)
            except Exception as err:
                if not job.future.done():
                    job.future.set_exception(err)
                continue
            self.batches += 1
            if not job.future.done():
                job.future.set_result(records)


class _Answered:
    """Stands in for a Predictor in ``tag_documents``: its predictions were already made by the batcher."""

    def __init__(self, records: list[dict]):
        self.records = records

    def predict(self, texts: Sequence[str], min_confidence: float | None = None) -> list[dict]:
        assert len(texts) == len(self.records)
        return [apply_threshold(record, min_confidence) for record in self.records]


# ---------------------------------------------------------------- the app


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 before any route reads it (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_big = error_response(413, f"body: larger than {self.max_bytes} bytes", "body")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await too_big(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await too_big(scope, receive, send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def create_app(load: Callable[[], Any], settings: ServiceSettings) -> FastAPI:
    """The service for the predictor that ``load()`` builds (on the model thread, after start-up: /readyz says when)."""
    state: dict[str, Any] = {"predictor": None, "batcher": None, "error": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claimstance-model")
        loader = asyncio.get_running_loop().create_task(_load(executor))
        yield
        if state["batcher"] is not None:
            await state["batcher"].close()
        loader.cancel()
        executor.shutdown(wait=False, cancel_futures=True)

    async def _load(executor: ThreadPoolExecutor) -> None:
        try:
            predictor = await asyncio.get_running_loop().run_in_executor(executor, load)
        except Exception as err:
            log.exception("the model failed to load")
            state["error"] = f"the model failed to load: {err}"
            return
        batcher = MicroBatcher(predictor.predict, executor, settings.batch_size, settings.max_wait_ms, settings.max_queue)
        batcher.start()
        state["predictor"], state["batcher"] = predictor, batcher
        log.info("ready: %s (%s backend)", getattr(predictor, "model_dir", "model"), getattr(predictor, "backend", "?"))

    app = FastAPI(title="claimstance", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return error_response(err.status, str(err), err.where)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, err: Overloaded) -> JSONResponse:
        return error_response(503, str(err), retry_after=settings.retry_after_s)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        return error_response(500, f"internal error ({type(err).__name__}); the server log has the details")

    def batcher() -> MicroBatcher:
        if state["batcher"] is None:
            raise Overloaded(state["error"] or "the model is loading")
        return state["batcher"]

    def pairs() -> bool:
        """Whether the model reads ``{"text", "text_pair"}`` pairs (Predictor.text_pair) rather than sentences."""
        return bool(getattr(state["predictor"], "text_pair", False))

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 once the model is loaded, 503 before (or if it failed to load)."""
        predictor = state["predictor"]
        if predictor is None:
            status = "failed" if state["error"] else "loading"
            return JSONResponse({"status": status, "error": state["error"]}, status_code=503)
        labels = list(getattr(predictor, "labels", []))
        backend = getattr(predictor, "backend", None)
        return JSONResponse({"status": "ready", "backend": backend, "labels": labels, "text_pair": pairs()})

    @app.post("/v1/classify")
    async def classify(request: Request) -> JSONResponse:
        """One prediction per sentence, as ``Predictor.predict`` gives them."""
        body = read_json(await request.body())
        submit = batcher().submit
        items, min_confidence = parse_classify(body, settings, pairs())
        records = await submit(items)
        return JSONResponse({"predictions": [apply_threshold(record, min_confidence) for record in records]})

    @app.post("/v1/tag")
    async def tag(request: Request) -> JSONResponse:
        """The rows of one article (doc, paragraph, sentence, offsets, heading, text + prediction), as ``predict`` writes them."""
        text, layout, doc, min_confidence = parse_tag(read_json(await request.body()), settings)
        submit = batcher().submit
        if pairs():
            raise RequestError(422, "text", "this model was trained on text pairs: send them to /v1/classify")
        document = await asyncio.to_thread(_segmented, doc, text, layout)
        if not document.rows:
            raise RequestError(422, "text", "no sentences in the text")
        if len(document.rows) > settings.max_sentences:
            raise RequestError(422, "text", f"{len(document.rows)} sentences, at most {settings.max_sentences} per request")
        records = await submit(document.model_texts)
        tagged = tag_documents(_Answered(records), [document], len(records), min_confidence)
        return JSONResponse({"rows": [row for _, _, rows in tagged for row in rows]})

    return app
