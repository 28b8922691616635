"""Write a folder or a file so that it appears whole or not at all, with the modes a plain ``open``/``mkdir`` would give."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _umask() -> int:
    """The process umask; reading it means setting it, so it is put straight back."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder to fill; on success it replaces ``target``, on any error it is removed.

    A kill or crash leaves at most a hidden ``.name-partial-*`` folder, never a ``target`` that looks complete.
    The folder and what it holds get ``0o777``/``0o666 & ~umask`` like ``mkdir``/``open``, not the private modes of
    ``mkdtemp`` or of libraries that write through temporary files (safetensors leaves its weights 0600).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-partial-", dir=target.parent))
    try:
        yield staging
        mask = _umask()
        for path in [staging, *staging.rglob("*")]:
            if not path.is_symlink():
                path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_file(target: Path) -> Iterator[TextIO]:
    """Yield a text handle on a hidden sibling file; on success it replaces ``target``, on any error it is removed.

    The file gets ``0o666 & ~umask`` like ``open``, not the private 0600 of ``NamedTemporaryFile``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}-", delete=False)
    try:
        os.chmod(handle.fileno(), 0o666 & ~_umask())
        with handle:
            yield handle
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
