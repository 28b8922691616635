"""``predict``: tag ``text=`` or the documents of ``input=``; JSON lines, an HTML report and a per-document summary."""

from __future__ import annotations

from claimstance.errors import exits_cleanly
from claimstance.inference.tagging import tag


@exits_cleanly
def run(cfg) -> int:
    """``scripts/predict.py``: see ``configs/predict.yaml`` for every option."""
    return tag(cfg)
