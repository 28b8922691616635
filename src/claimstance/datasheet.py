"""Generated parts of the datasheet (``data/README.md``): label x domain counts, never typed by hand."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from claimstance.annotations import Annotation, load_annotations
from claimstance.config import exits_cleanly

log = logging.getLogger(__name__)
START, END = "<!-- generated:counts:start -->", "<!-- generated:counts:end -->"


def count_table(rows: Sequence[Annotation], labels: Sequence[str], title: str) -> str:
    """Markdown table: one row per domain, one column per label, plus hard-case share and totals."""
    cells = Counter((row.domain, row.label) for row in rows)
    hard = Counter(row.domain for row in rows if row.note)
    domains = sorted({row.domain for row in rows})
    lines = [f"**{title}** ({len(rows)} sentences)", "", "| domain | " + " | ".join(labels) + " | total | hard cases |"]
    lines.append("|---|" + "---:|" * (len(labels) + 2))
    for domain in domains:
        total = sum(cells[domain, label] for label in labels)
        counts = " | ".join(str(cells[domain, label]) for label in labels)
        lines.append(f"| {domain} | {counts} | {total} | {hard[domain] / total:.0%} |")
    totals = " | ".join(str(sum(cells[d, label] for d in domains)) for label in labels)
    lines.append(f"| **all** | {totals} | {len(rows)} | {sum(hard.values()) / len(rows):.0%} |")
    return "\n".join(lines)


def render(annotations: Path, challenge: Path, labels: Sequence[str]) -> str:
    """Both tables, for the training corpus and the challenge set."""
    training = load_annotations(annotations, labels).rows
    held_out = load_annotations(challenge, labels).rows
    return "\n\n".join([count_table(training, labels, "Training corpus"), count_table(held_out, labels, "Challenge set")])


def update_readme(readme: Path, block: str) -> bool:
    """Replace the generated block between the markers; return whether the file changed."""
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{block}\n{END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


@exits_cleanly
def run(cfg) -> None:
    """``scripts/datasheet.py``: regenerate the counts in ``data/README.md``."""
    block = render(Path(cfg.data.annotations), Path(cfg.data.challenge), list(cfg.data.known_labels))
    changed = update_readme(Path(cfg.readme), block)
    log.info("%s %s", "Updated" if changed else "Already up to date:", cfg.readme)
