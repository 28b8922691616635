"""Per-document HTML report and plain-text summary of tagged articles, for a reviewer to read the model's labels in context.

A document is ``{"doc": name, "rows": [...]}`` with one row per sentence as the predictor writes it (``paragraph``,
``sentence``, ``text``, ``heading``, ``label``, ``score``, ``probabilities``, ``abstained``). The HTML is one file with
inline CSS and JS and no network access (a Content-Security-Policy forbids it), so it can be mailed or archived as is.
The data travels as JSON and only the current page's documents are put into the DOM, so 500+ documents stay fast.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

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

_CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d8dee4;--paper:#fff;--wash:#f5f6f8}
*{box-sizing:border-box}
body{margin:0;font:16px/1.65 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
background:var(--wash)}
.wrap{max-width:52rem;margin:0 auto;padding:0 1.25rem}
.top{padding-top:1.4rem;padding-bottom:.6rem}
h1{font-size:1.45rem;margin:0}
.totals{color:var(--muted);margin:.2rem 0 .6rem}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1.1rem;align-items:center;margin:0}
.legend .n{color:var(--muted);margin-left:.3rem}
.note{color:var(--muted);font-size:.85rem;margin:.4rem 0 0}
.bar{position:sticky;top:0;z-index:1;background:rgba(245,246,248,.96);border-bottom:1px solid var(--line)}
.bar .wrap{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;padding:.5rem 1.25rem;font-size:.9rem}
.bar #shown{color:var(--muted);margin-left:auto}
select,button{font:inherit;padding:.15rem .5rem;border:1px solid var(--line);border-radius:6px;background:var(--paper);
color:var(--ink)}
button:disabled{opacity:.4}
.doc{background:var(--paper);border:1px solid var(--line);border-radius:8px;padding:.9rem 1.25rem;margin:1rem 0}
.doc h2{font-size:1.05rem;margin:0}
.counts{margin:.15rem 0 .5rem;font-size:.8rem}
.counts .n{color:var(--muted);margin-right:.6rem}
.doc h3{font-size:1.05rem;line-height:1.45;margin:.7rem 0 .3rem}
.doc p{margin:.45rem 0}
.empty{color:var(--muted)}
.s{padding:.08em .2em;border-radius:3px;background:var(--b);border-bottom:2px solid var(--a);color:var(--t,inherit);
-webkit-box-decoration-break:clone;box-decoration-break:clone}
.s:hover{outline:2px solid var(--a)}
.s.abst{--a:#8c959f;background:none;border:1px dashed var(--a);color:var(--muted)}
.s.dim{opacity:.28}
.chip{display:inline-block;padding:0 .5em;margin:0 .3rem .2rem 0;border-radius:999px;background:var(--b);
border:1px solid var(--a);color:var(--t,inherit)}
.chip.abst{--a:#8c959f;background:none;border-style:dashed}
"""

_JS = """
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const labels = data.labels;
  const $ = (id) => document.getElementById(id);
  const docsEl = $("docs"), filter = $("filter"), prev = $("prev"), next = $("next");
  let page = 0;

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const cls = (label) => (label < 0 ? "abst" : "c" + label);
  const chosen = () => (filter.value === "" ? null : Number(filter.value));
  const shown = () => {
    const f = chosen();
    if (f === null) return data.docs;
    return data.docs.filter((d) => (f < 0 ? d.abstained : d.counts[f]) > 0);
  };

  function renderDoc(doc, f) {
    const art = el("article", "doc");
    art.append(el("h2", "", doc.name));
    const counts = el("p", "counts");
    counts.append(el("span", "n", doc.sentences.length + (doc.sentences.length === 1 ? " sentence" : " sentences")));
    doc.counts.forEach((n, i) => n && counts.append(el("span", "chip " + cls(i), labels[i] + " " + n)));
    if (doc.abstained) counts.append(el("span", "chip abst", "abstained " + doc.abstained));
    art.append(counts);
    if (!doc.sentences.length) art.append(el("p", "empty", "no sentences"));
    let block = null, para = null;
    for (const [text, label, paragraph, heading, tip] of doc.sentences) {
      const span = el("span", "s " + cls(label), text);
      span.dataset.label = label < 0 ? "" : labels[label];
      if (label < 0) span.dataset.abstained = "true";
      span.title = tip;
      if (f !== null && f !== label) span.classList.add("dim");
      if (heading) {
        const h = el("h3");
        h.append(span);
        art.append(h);
        block = null;
        continue;
      }
      if (block === null || paragraph !== para) {
        block = el("p");
        art.append(block);
        para = paragraph;
      } else {
        block.append(" ");
      }
      block.append(span);
    }
    return art;
  }

  function render() {
    const docs = shown(), f = chosen();
    const pages = Math.max(1, Math.ceil(docs.length / data.pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const start = page * data.pageSize;
    docsEl.replaceChildren(...docs.slice(start, start + data.pageSize).map((d) => renderDoc(d, f)));
    $("status").textContent = "page " + (page + 1) + " of " + pages;
    const noun = docs.length === 1 ? " document" : " documents";
    $("shown").textContent = docs.length + noun + (f === null ? "" : " with " + (f < 0 ? "abstentions" : labels[f]));
    prev.disabled = page === 0;
    next.disabled = page === pages - 1;
    const state = new URLSearchParams();
    if (f !== null) state.set("label", f < 0 ? "abstained" : labels[f]);
    if (page) state.set("page", page + 1);
    history.replaceState(null, "", state.toString() ? "#" + state : location.pathname + location.search);
  }

  // The URL hash (#label=caution&page=2) keeps the view across reloads and makes it linkable.
  const state = new URLSearchParams(location.hash.slice(1));
  const wanted = state.get("label");
  if (wanted === "abstained") filter.value = "-1";
  else if (labels.includes(wanted)) filter.value = String(labels.indexOf(wanted));
  page = (parseInt(state.get("page"), 10) || 1) - 1;

  filter.addEventListener("change", () => { page = 0; render(); });
  prev.addEventListener("click", () => { page -= 1; render(); scrollTo(0, 0); });
  next.addEventListener("click", () => { page += 1; render(); scrollTo(0, 0); });
  render();
})();
"""


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


def _palette_css(labels: Sequence[str], no_claim_label: str | None) -> str:
    rules = []
    for i, label in enumerate(labels):
        if label == no_claim_label:
            rules.append(f".c{i}{{--b:{NEUTRAL[0]};--a:{NEUTRAL[1]};--t:#3d444d}}")
        else:
            background, accent = PALETTE[i % len(PALETTE)]
            rules.append(f".c{i}{{--b:{background};--a:{accent}}}")
    return "\n".join(rules)


def _script_json(data: object) -> str:
    """JSON safe inside <script>: no '<' survives, so text like '</script>' or '<!--' cannot end or bend the tag."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


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

    # The legend doubles as the totals by label: each swatch is styled exactly like a sentence, followed by its count.
    keys = [(f"c{i}", label, totals[label]) for i, label in enumerate(labels)] + [("abst", "abstained", total_abstained)]
    legend = "".join(
        f'<span><span class="s {css}">{html.escape(name)}</span><span class="n">{n}</span></span>' for css, name, n in keys
    )
    options = "".join(f'<option value="{i}">{html.escape(label)} ({totals[label]})</option>' for i, label in enumerate(labels))
    options += f'<option value="-1">abstained ({total_abstained})</option>'
    data = {"labels": labels, "pageSize": page_size, "docs": docs}
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{html.escape(title)}</title>
<style>{_CSS}{_palette_css(labels, no_claim_label)}
</style>
</head>
<body>
<header class="top wrap">
<h1>{html.escape(title)}</h1>
<p class="totals">{_many(len(docs), "document")} · {_many(total_sentences, "sentence")}</p>
<p class="legend" id="legend">{legend}</p>
<p class="note">Each sentence is highlighted by its label; dashed: the model was not confident enough to pick one.
Hover a sentence for its probabilities.</p>
</header>
<nav class="bar"><div class="wrap">
<label>Show <select id="filter"><option value="">all labels</option>{options}</select></label>
<button id="prev" type="button">← prev</button><span id="status">page 1 of 1</span><button id="next" type="button">next →</button>
<span id="shown"></span>
</div></nav>
<main class="wrap" id="docs"></main>
<noscript><p class="wrap">This report shows its documents with JavaScript; please enable it.</p></noscript>
<script type="application/json" id="report-data">{_script_json(data)}</script>
<script>{_JS}</script>
</body>
</html>
"""


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
