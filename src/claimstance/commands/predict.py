"""``predict``: tag ``text=`` or the documents of ``input=``; JSON lines, an HTML report and a per-document summary."""

from __future__ import annotations

from claimstance.errors import SKIPPED_EXIT, exits_cleanly
from claimstance.inference.tagging import run_tagging


@exits_cleanly
def run(cfg) -> int:
    """``scripts/predict.py``: see ``configs/predict.yaml`` for every option.

    Exit 0 when every file was tagged (or ``on_error=skip``), 3 when a batch skipped files it could not read
    (listed in ``<output>.errors.jsonl``), 2 on bad input or config with nothing written.
    """
    tagged = run_tagging(cfg)
    if tagged.skipped and cfg.on_error != "skip":
        raise SystemExit(SKIPPED_EXIT)
    return tagged.count
