"""The LitServe candidate that ``serve_load compare`` measures against the FastAPI service.

Same Predictor, same batch size and wait, one sentence per request, behind LitServe's own batching loop. Its
own module because LitServe pickles the API class into a worker process: it must be importable by name.
Run: ``python -m claimstance.bench.litserve_candidate MODEL_DIR PORT BATCH_SIZE MAX_WAIT_MS``.
"""

from __future__ import annotations

import sys

import litserve as ls

from claimstance.inference.predictor import Predictor


class Classify(ls.LitAPI):
    """``POST /v1/classify`` with ``{"sentences": [one sentence]}``, answered like the FastAPI service."""

    def __init__(self, model_dir: str, batch_size: int, max_wait_ms: float):
        super().__init__(max_batch_size=batch_size, batch_timeout=max_wait_ms / 1000, api_path="/v1/classify")
        self.model_dir, self.batch_size = model_dir, batch_size

    def setup(self, device) -> None:
        self.predictor = Predictor(self.model_dir, batch_size=self.batch_size)

    def decode_request(self, request: dict) -> str:
        return request["sentences"][0]

    def predict(self, texts: list[str]) -> list[dict]:
        return self.predictor.predict(list(texts))

    def encode_response(self, output: dict) -> dict:
        return {"predictions": [output]}


def main(model_dir: str, port: int, batch_size: int, max_wait_ms: float) -> None:
    server = ls.LitServer(Classify(model_dir, batch_size, max_wait_ms), accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
