"""Every table the project prints or writes, through one library (tabulate): plain text for logs, GitHub markdown for docs.

The first column (a name) is left-aligned and every other column right-aligned, numbers or not, so a row of
totals such as "565 (17%)" lines up with the counts above it.
"""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate


def _table(
    header: Sequence[str], rows: Sequence[Sequence], tablefmt: str, floatfmt: str, align: Sequence[str] | None = None
) -> str:
    align = list(align) if align is not None else ["left"] + ["right"] * (len(header) - 1)
    rows = [[format(cell, floatfmt) if isinstance(cell, float) else cell for cell in row] for row in rows]  # text kept as written
    return tabulate(rows, headers=list(header), tablefmt=tablefmt, colalign=align, disable_numparse=True)


def aligned_rows(rows: Sequence[Sequence], align: Sequence[str]) -> list[str]:
    """Rows without a header, columns aligned as given (``left``/``right``), two spaces apart: lists inside a text."""
    return tabulate(rows, tablefmt="plain", colalign=list(align), disable_numparse=True).splitlines()


def text_table(header: Sequence[str], rows: Sequence[Sequence], floatfmt: str = ".3f") -> str:
    """A plain-text table for logs and stdout, floats to three places."""
    return _table(header, rows, "simple", floatfmt)


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence], floatfmt: str = ".3f", align: Sequence[str] | None = None
) -> str:
    """A GitHub-markdown table for model cards and docs; ``align`` (``left``/``right`` per column) overrides the default."""
    return _table(header, rows, "github", floatfmt, align)
