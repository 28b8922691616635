"""``serve``: the REST service (``POST /v1/classify``, ``POST /v1/tag``, ``/healthz``, ``/readyz``) on uvicorn."""

from __future__ import annotations

import signal

from claimstance.errors import UserError, exits_cleanly
from claimstance.inference.artifacts import check_export


def _stopped(signum, frame) -> None:
    raise SystemExit(0)


@exits_cleanly
def run(cfg) -> None:
    """``scripts/serve.py``: see ``configs/serve.yaml`` for every option.

    The export is checked before the server starts (a wrong ``model_dir`` exits 2); the model then loads in the
    background while ``/healthz`` already answers and ``/readyz`` says 503. A graceful stop exits 0.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as err:
        raise UserError(f"the service needs the serve extra ({err.name} is missing): pip install 'claimstance[serve]'") from err
    from claimstance.inference.predictor import Predictor
    from claimstance.inference.service import ServiceSettings, create_app

    check_export(cfg.model_dir, cfg.expected_labels)
    settings = ServiceSettings(**cfg.batching, **cfg.limits, min_confidence=cfg.min_confidence)

    def load() -> Predictor:
        return Predictor(
            cfg.model_dir,
            backend=cfg.backend,
            batch_size=settings.batch_size,
            threads=cfg.threads,
            expected_labels=cfg.expected_labels,
        )

    app = create_app(load, settings)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with this handler that ends the process with status 0
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level=cfg.log_level,
        access_log=cfg.access_log,
        timeout_graceful_shutdown=cfg.graceful_timeout_s,
    )
