"""Per-document HTML report and plain-text summary of tagged articles, for a reviewer to read the model's labels in context.

A document is ``{"doc": name, "rows": [...]}`` with one row per sentence as the predictor writes it (``paragraph``,
``sentence``, ``text``, ``heading``, ``label``, ``score``, ``probabilities``, ``abstained``). The HTML is one file with
inline CSS and JS and no network access (a Content-Security-Policy forbids it), so it can be mailed or archived as is.
The data travels as JSON and only the current page's documents are put into the DOM, so 500+ documents stay fast.
This module prepares the data; the markup, CSS and JS are ``templates/report.html.j2``, ``report.css`` and ``report.js``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
from markupsafe import Markup

from claimstance.atomic import staged_file
from claimstance.tables import aligned_rows

# (background tint, accent) per label, assigned by the label's index in the config; cycles past eight labels.
PALETTE = [
    ("#dbeafe", "#2563eb"),
    ("#fde7c4", "#d97706"),
    ("#d7f5e1", "#16a34a"),
    ("#ece6fe", "#7c3aed"),
    ("#ffe1e6", "#e11d48"),
    ("#cdf3f9", "#0891b2"),
    ("#e8f7c8", "#65a30d"),
    ("#ffe6d1", "#ea580c"),
]
# The no-claim label is most of real news: highlighted, but quietly, so the claims stand out.
NEUTRAL = ("#eceff2", "#c3cad2")
NEUTRAL_TEXT = "#3d444d"
TEMPLATES = Path(__file__).parent / "templates"


def _abstained(row: Mapping) -> bool:
    return bool(row.get("abstained")) or row.get("label") is None


def _counts(rows: Sequence[Mapping], labels: Sequence[str]) -> tuple[dict[str, int], int]:
    """Sentences per label (config order) and the abstained count; a label outside ``labels`` is a caller's bug."""
    counts = dict.fromkeys(labels, 0)
    abstained = 0
    for row in rows:
        if _abstained(row):
            abstained += 1
        elif row["label"] in counts:
            counts[row["label"]] += 1
        else:
            where = f"{row.get('doc')!r} sentence {row.get('sentence')}"
            raise ValueError(f"{where}: label {row['label']!r} is not one of {list(labels)}")
    return counts, abstained


def _many(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clean(text: str) -> str:
    """Hard-wrapped source text reads as one line."""
    return " ".join(text.split())


def _tooltip(row: Mapping) -> str:
    probabilities = sorted((row.get("probabilities") or {}).items(), key=lambda item: -item[1])
    parts = [f"{label} {p:.2f}" for label, p in probabilities] or [f"{row.get('label') or 'top'} {row.get('score', 0.0):.2f}"]
    return ("abstained · " if _abstained(row) else "") + " · ".join(parts)


def _colours(labels: Sequence[str], no_claim_label: str | None) -> list[dict[str, str | None]]:
    """Each label's highlight, by its index: the palette in config order, the no-claim label neutral."""
    colours = []
    for i, label in enumerate(labels):
        if label == no_claim_label:
            colours.append({"background": NEUTRAL[0], "accent": NEUTRAL[1], "text": NEUTRAL_TEXT})
        else:
            background, accent = PALETTE[i % len(PALETTE)]
            colours.append({"background": background, "accent": accent, "text": None})
    return colours


def _script_json(data: object) -> Markup:
    """JSON safe inside <script>: no '<' survives, so text like '</script>' or '<!--' cannot end or bend the tag."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text)  # already safe; HTML-escaping it would corrupt the JSON


@functools.cache
def _page() -> jinja2.Template:
    """The page template, loaded once; autoescape on, and a missing value is an error rather than an empty string."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["script_json"] = _script_json
    environment.filters["many"] = _many
    return environment.get_template("report.html.j2")


def render_html(
    documents: Sequence[Mapping],
    labels: Sequence[str],
    *,
    title: str = "claimstance report",
    no_claim_label: str | None = None,
    page_size: int = 20,
) -> str:
    """One self-contained HTML page: every sentence highlighted by label, probabilities on hover, a label filter, pages."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    docs, totals, total_abstained, total_sentences = [], dict.fromkeys(labels, 0), 0, 0
    for document in documents:
        rows = document["rows"]
        counts, abstained = _counts(rows, labels)
        for label, n in counts.items():
            totals[label] += n
        total_abstained += abstained
        total_sentences += len(rows)
        # One compact array per sentence (text, label index or -1 if abstained, paragraph, heading, tooltip): 500+ documents ship.
        sentences = [
            [
                _clean(r["text"]),
                -1 if _abstained(r) else index[r["label"]],
                r["paragraph"],
                int(bool(r.get("heading"))),
                _tooltip(r),
            ]
            for r in rows
        ]
        docs.append({"name": document["doc"], "counts": list(counts.values()), "abstained": abstained, "sentences": sentences})

    legend = [{"css": f"c{i}", "value": i, "name": label, "n": totals[label]} for i, label in enumerate(labels)]
    legend.append({"css": "abst", "value": -1, "name": "abstained", "n": total_abstained})
    return _page().render(
        title=title,
        labels=labels,
        page_size=page_size,
        docs=docs,
        total_sentences=total_sentences,
        legend=legend,
        colours=_colours(labels, no_claim_label),
    )


def write_html(path: str | Path, documents: Sequence[Mapping], labels: Sequence[str], **kwargs) -> Path:
    """Write :func:`render_html` to a temporary file beside ``path`` and move it into place, so no half page is ever seen."""
    path = Path(path)
    with staged_file(path) as handle:
        handle.write(render_html(documents, labels, **kwargs))
    return path


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _counts_line(counts: Mapping[str, int], abstained: int) -> str:
    return ", ".join(f"{label} {n}" for label, n in [*counts.items(), ("abstained", abstained)])


def document_summary(document: Mapping, labels: Sequence[str], no_claim_label: str | None = None, top: int = 3) -> str:
    """A few stdout lines per document: its counts and the claims the model is surest of, to triage before opening the HTML."""
    rows = document["rows"]
    counts, abstained = _counts(rows, labels)
    claims = [r for r in rows if not _abstained(r) and r["label"] != no_claim_label]
    best = sorted(claims, key=lambda r: -r["score"])[:top]
    lines = [f"{document['doc']}: {_many(len(rows), 'sentence')}", f"  {_counts_line(counts, abstained)}"]
    if best:
        table = [(f"{r['score']:.2f}", r["label"], _clip(_clean(r["text"]))) for r in best]
        lines += ["  top claims:", *("    " + line for line in aligned_rows(table, ("right", "left", "left")))]
    return "\n".join(lines)


def summaries(documents: Sequence[Mapping], labels: Sequence[str], no_claim_label: str | None = None, top: int = 3) -> str:
    """Every document's summary, then one line of totals."""
    totals, abstained, sentences = dict.fromkeys(labels, 0), 0, 0
    parts = []
    for document in documents:
        parts.append(document_summary(document, labels, no_claim_label, top))
        counts, n_abstained = _counts(document["rows"], labels)
        for label, n in counts.items():
            totals[label] += n
        abstained += n_abstained
        sentences += len(document["rows"])
    parts.append(f"total: {_many(len(documents), 'document')}, {_many(sentences, 'sentence')}: {_counts_line(totals, abstained)}")
    return "\n\n".join(parts)
