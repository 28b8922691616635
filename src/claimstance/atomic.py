"""Write a folder or a file so that it appears whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder to fill; on success it replaces ``target``, on any error it is removed.

    A kill or crash leaves at most a hidden ``.name-partial-*`` folder, never a ``target`` that looks complete.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-partial-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_file(target: Path) -> Iterator[TextIO]:
    """Yield a text handle on a hidden sibling file; on success it replaces ``target``, on any error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}-", delete=False)
    try:
        with handle:
            yield handle
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
