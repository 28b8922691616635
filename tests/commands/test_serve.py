"""``claimstance-serve``: the real server on 127.0.0.1 under load, its 4xx answers, and a graceful SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time

import pytest
from conftest import ROOT, compose_train, corpus_sample

from claimstance.errors import UserError


def serve_argv(model_dir, port: int, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "serve.py"), f"model_dir={model_dir}", f"port={port}", *overrides]


def test_a_missing_export_exits_2_before_serving(tmp_path, caplog):
    from claimstance.commands.serve import run

    cfg = compose_train([], tmp_path, config_name="serve", values={"model_dir": str(tmp_path / "nothing")})
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    assert "model folder does not exist" in caplog.text


def test_without_the_serve_extra_the_command_says_what_to_install(tmp_path, monkeypatch, caplog):
    from claimstance.commands.serve import run

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    cfg = compose_train([], tmp_path, config_name="serve", values={"model_dir": str(tmp_path)})
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert isinstance(exit_info.value.__cause__, UserError)
    assert "pip install 'claimstance[serve]'" in caplog.text


@pytest.mark.slow  # trains the tiny export, starts a server
def test_the_served_model_under_load_answers_like_the_predictor(tiny_export, tmp_path):
    from claimstance.bench.serve_load import free_port, request, run_load, start_server, stop_server
    from claimstance.inference.predictor import Predictor

    sentences = [row["text"] for row in corpus_sample(10)]
    port = free_port()
    process = start_server(serve_argv(tiny_export, port, "log_level=warning"), port, "/readyz", tmp_path / "serve.log", 180)
    try:
        report = run_load(f"http://127.0.0.1:{port}", sentences, clients=16, seconds=15)
        post = lambda body: request("127.0.0.1", port, "POST", "/v1/classify", body)  # noqa: E731
        malformed = post(b'{"sentences": ["We will.",')
        oversized = post(json.dumps({"sentences": ["x" * 1_100_000]}).encode())
        wrong_type = post(b'{"sentences": ["We will.", 3]}')
        tagged = request("127.0.0.1", port, "POST", "/v1/tag", json.dumps({"text": " ".join(sentences[:5])}).encode())
    finally:
        exit_code = stop_server(process)
    assert report.requests > 16 and report.errors == 0, report.summary()
    expected = {p["text"]: p["label"] for p in Predictor(tiny_export).predict(sentences)}
    assert report.labels == {sentence: {expected[sentence]} for sentence in report.labels}
    assert set(report.labels) == set(sentences)  # every sentence was asked, each always got the predictor's label
    assert (malformed[0], malformed[1]["field"]) == (400, "body")
    assert (oversized[0], oversized[1]["field"]) == (413, "body")
    assert (wrong_type[0], wrong_type[1]["field"]) == (422, "sentences[1]")
    assert tagged[0] == 200 and [row["text"] for row in tagged[1]["rows"]][:1] == sentences[:1]
    assert exit_code == 0


@pytest.mark.slow  # trains the tiny export, starts a server
def test_sigterm_finishes_the_requests_in_flight_then_exits_0(tiny_export, tmp_path):
    from claimstance.bench.serve_load import free_port, request, start_server, stop_server

    port = free_port()
    # requests wait up to 5 s for company in the batcher: they are surely in flight when SIGTERM comes after 1.5 s
    argv = serve_argv(tiny_export, port, "log_level=warning", "batching.max_wait_ms=5000")
    process = start_server(argv, port, "/readyz", tmp_path / "serve.log", 180)
    answers: dict[int, tuple[int, float]] = {}

    def ask(n: int) -> None:
        status, body = request("127.0.0.1", port, "POST", "/v1/classify", json.dumps({"sentences": [f"We will {n}."]}).encode())
        answers[n] = (status, time.monotonic())

    try:
        clients = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
        for client in clients:
            client.start()
        time.sleep(1.5)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        for client in clients:
            client.join(60)
        exit_code = process.wait(30)
        took = time.monotonic() - stopped_at
    finally:
        stop_server(process)
    assert sorted(answers) == list(range(8)), (tmp_path / "serve.log").read_text()
    assert all(status == 200 for status, _ in answers.values())  # none lost
    assert all(done > stopped_at for _, done in answers.values())  # each was still in flight at SIGTERM
    assert exit_code == 0 and took < 30
