"""``benchmark``: time training and inference of the export on this machine, against its GEMM bound."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from claimstance.bench.figures import format_table
from claimstance.bench.measure import benchmark
from claimstance.errors import exits_cleanly

log = logging.getLogger(__name__)


@exits_cleanly
def run(cfg: DictConfig) -> dict:
    """``scripts/benchmark.py``: measure, write ``bench.json``, print the table."""
    result = benchmark(cfg)
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    log.info("\n%s", format_table(result))
    log.info("Wrote %s", output)
    return result
