"""Load for the REST service: N concurrent clients for a fixed time, requests/s and latency percentiles.

``python -m claimstance.bench.serve_load compare MODEL_DIR`` starts the FastAPI service and a LitServe server
on the same model and batching, one after the other, and loads each the same way: on a shared machine only the
ratio of the two runs means much. ``load URL`` loads a service that is already running. Clients are threads
with one keep-alive connection each (stdlib only), each sending one sentence per request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from claimstance.bench.inputs import corpus_sentences
from claimstance.config import project_root


@dataclass
class LoadReport:
    """What a load run saw: counts, throughput, latency, and the labels answered per sentence."""

    clients: int
    seconds: float
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    labels: dict[str, set] = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "labels"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(host: str, port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, dict]:
    """One request on a fresh connection: status and the decoded JSON body (``{}`` when empty, ``{"text"}`` if not JSON)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data) if data else {}
    except ValueError:  # LitServe's /health answers plain text
        return response.status, {"text": data.decode(errors="replace")}


def wait_ready(host: str, port: int, path: str, timeout: float, process: subprocess.Popen | None = None) -> float:
    """Seconds until ``GET path`` answers 200; raises TimeoutError after ``timeout`` or if ``process`` exits."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready")
        try:
            if request(host, port, "GET", path, timeout=2)[0] == 200:
                return time.monotonic() - start
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"http://{host}:{port}{path} was not ready after {timeout:.0f} s")


def _client(host, port, path, sentences, offset, stop_at, latencies, report, lock) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    seen: list[tuple[str, object]] = []
    statuses: Counter = Counter()
    n = offset
    while time.monotonic() < stop_at:
        sentence = sentences[n % len(sentences)]
        n += 1
        body = json.dumps({"sentences": [sentence]}).encode()
        start = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=60)
            status, data = 0, b""
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
        if status == 200:
            seen.append((sentence, json.loads(data)["predictions"][0]["label"]))
    connection.close()
    with lock:
        for sentence, label in seen:
            report.labels.setdefault(sentence, set()).add(label)
        for status, count in statuses.items():
            report.statuses[status] = report.statuses.get(status, 0) + count


def run_load(
    url: str, sentences: Sequence[str], clients: int = 16, seconds: float = 20.0, path: str = "/v1/classify"
) -> LoadReport:
    """``clients`` threads post one sentence per request to ``url + path`` for ``seconds``, then stop by themselves."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    report = LoadReport(clients=clients, seconds=seconds)
    latencies: list[float] = []  # list.append is atomic: threads share it
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    step = max(1, len(sentences) // clients)
    threads = [
        threading.Thread(target=_client, args=(host, port, path, list(sentences), i * step, stop_at, latencies, report, lock))
        for i in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    report.requests = len(latencies)
    report.errors = report.requests - report.statuses.get(200, 0)
    report.requests_per_s = round(report.statuses.get(200, 0) / elapsed, 1)
    if latencies:
        p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
        report.p50_ms, report.p95_ms, report.p99_ms = round(p50, 1), round(p95, 1), round(p99, 1)
    return report


def start_server(argv: Sequence[str], port: int, ready_path: str, log: Path, timeout: float = 120) -> subprocess.Popen:
    """Start a server process (its own process group, output to ``log``) and return it once ``ready_path`` answers 200."""
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(list(argv), env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready("127.0.0.1", port, ready_path, timeout, process)
    except BaseException as err:  # never leave a server behind, whatever stopped the wait
        stop_server(process)
        if isinstance(err, (TimeoutError, RuntimeError)):
            raise RuntimeError(f"{err}; its output:\n{log.read_text(errors='replace')[-3000:]}") from err
        raise
    return process


def stop_server(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM the server's process group, wait, SIGKILL if it lingers; its exit status."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def serve_command(model_dir: str | Path, port: int, *overrides: str) -> list[str]:
    """The argv of ``claimstance-serve`` (run through the interpreter, so no install of the console entry is needed)."""
    entry = "from claimstance.commands.cli import serve; serve()"
    return [sys.executable, "-c", entry, f"model_dir={model_dir}", f"port={port}", "log_level=warning", *overrides]


def predictor_rate(model_dir: str | Path, sentences: Sequence[str], batch: int, seconds: float) -> float:
    """Sentences/s of ``Predictor.predict`` alone, ``batch`` (= the clients) at a time: what the machine allows now."""
    from claimstance.inference.predictor import Predictor

    predictor = Predictor(model_dir, batch_size=batch)
    predictor.predict(list(sentences[:batch]))
    done, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        offset = done % max(1, len(sentences) - batch)
        done += len(predictor.predict(list(sentences[offset : offset + batch])))
    return round(done / (time.monotonic() - start), 1)


def compare(
    model_dir: str, sentences: Sequence[str], clients: int, seconds: float, batch_size: int, max_wait_ms: float, rounds: int = 1
) -> dict:
    """Load the FastAPI service and the LitServe candidate the same way, alternating for ``rounds``; figures and ratios.

    Each round starts each server afresh, warms it for a few seconds, then loads it; the ratios are per round,
    so a neighbour's load that comes and goes shows as spread between rounds rather than as a wrong winner.
    """
    candidates = {
        "fastapi": (lambda port: serve_command(model_dir, port, f"batching.batch_size={batch_size}",
                                               f"batching.max_wait_ms={max_wait_ms}"), "/readyz"),
        "litserve": (lambda port: [sys.executable, "-m", "claimstance.bench.litserve_candidate", str(model_dir), str(port),
                                   str(batch_size), str(max_wait_ms)], "/health"),
    }  # fmt: skip
    runs: list[dict] = []
    for number in range(rounds):
        order = list(candidates) if number % 2 == 0 else list(reversed(candidates))
        results = {}
        for name in order:
            argv, ready = candidates[name]
            port = free_port()
            log = Path(tempfile.gettempdir()) / f"claimstance-serve-{name}-{port}.log"
            process = start_server(argv(port), port, ready, log)
            try:
                run_load(f"http://127.0.0.1:{port}", sentences[:64], clients, min(3.0, seconds))  # warm-up
                results[name] = run_load(f"http://127.0.0.1:{port}", sentences, clients, seconds).summary()
            finally:
                stop_server(process)
        fast, lit = results["fastapi"], results["litserve"]
        results["fastapi_over_litserve"] = {
            "requests_per_s": round(fast["requests_per_s"] / max(lit["requests_per_s"], 1e-9), 2),
            "p95_ms": round(fast["p95_ms"] / max(lit["p95_ms"], 1e-9), 2),
        }
        runs.append(results)
    ratios = [run["fastapi_over_litserve"] for run in runs]
    median = {key: float(np.median([r[key] for r in ratios])) for key in ("requests_per_s", "p95_ms")}
    ceiling = predictor_rate(model_dir, sentences, clients, seconds)
    return {"rounds": runs, "median_fastapi_over_litserve": median, "predictor_alone_sentences_per_s": ceiling}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m claimstance.bench.serve_load", description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("compare", "load"):
        p = sub.add_parser(mode)
        p.add_argument("target", help="model folder (compare) or the service's base URL (load)")
        p.add_argument("--clients", type=int, default=16)
        p.add_argument("--seconds", type=float, default=20)
        p.add_argument("--sentences", type=int, default=2000, help="distinct corpus sentences to cycle through")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--max-wait-ms", type=float, default=5)
        p.add_argument("--rounds", type=int, default=1, help="compare: alternate the two servers this many times")
        p.add_argument("--model-dir", help="load: also time Predictor.predict alone on this export, for scale")
    args = parser.parse_args(argv)
    sentences = corpus_sentences(project_root() / "data" / "annotations", args.sentences, seed=0)
    if args.mode == "load":
        result = run_load(args.target, sentences, args.clients, args.seconds).summary()
        if args.model_dir:
            ceiling = predictor_rate(args.model_dir, sentences, args.clients, args.seconds)
            result["predictor_alone_sentences_per_s"] = ceiling
    else:
        result = compare(args.target, sentences, args.clients, args.seconds, args.batch_size, args.max_wait_ms, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
