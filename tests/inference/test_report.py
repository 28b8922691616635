"""The per-document HTML report and text summary: fast checks on markup and text, then real renders in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from claimstance.inference.report import NEUTRAL, PALETTE, document_summary, render_html, summaries, write_html

LABELS = ["commitment", "caution", "request", "none"]
BREAKOUT = "Tanks crossed </script><b>the border</b> at dawn."


def row(doc: str, sentence: int, text: str, label: str | None, score: float, paragraph: int = 0, heading: bool = False) -> dict:
    """One predictor row; ``label=None`` is an abstention (its top probability goes to ``caution``)."""
    top = label or "caution"
    rest = (1 - score) / (len(LABELS) - 1)
    probabilities = {name: score if name == top else rest for name in LABELS}
    return {
        "doc": doc,
        "paragraph": paragraph,
        "sentence": sentence,
        "start": 0,
        "end": len(text),
        "text": text,
        "heading": heading,
        "label": label,
        "score": score,
        "probabilities": probabilities,
        "abstained": label is None,
        "model": "ignored extra field",
    }


def sample() -> list[dict]:
    """Three documents: a heading, a hard-wrapped sentence, an abstention and text that tries to break out of <script>."""
    alpha = [
        row("alpha", 0, "Ministers meet in Brussels", "none", 0.90, heading=True),
        row("alpha", 1, "The minister pledged to double aid next year.", "commitment", 0.93, paragraph=1),
        row("alpha", 2, "Officials warned the plan may slip.", "caution", 0.71, paragraph=1),
        row("alpha", 3, "We urge all parties\n    to return to talks.", "request", 0.88, paragraph=2),
    ]
    beta = [
        row("beta", 0, BREAKOUT, "none", 0.97),
        row("beta", 1, "The ministry may review the deal.", None, 0.41),
        row("beta", 2, "We will fund the bridge.", "commitment", 0.66, paragraph=1),
    ]
    gamma = [
        row("gamma", 0, "Prices rose 3% in May.", "none", 0.95),
        row("gamma", 1, "Unions demanded an inquiry.", "request", 0.82),
    ]
    return [{"doc": name, "rows": rows} for name, rows in [("alpha", alpha), ("beta", beta), ("gamma", gamma)]]


def embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert match, "no embedded JSON"
    return json.loads(match.group(1))


def test_embedded_json_cannot_break_out_of_its_script_tag():
    page = render_html(sample(), LABELS, no_claim_label="none")
    assert page.count("</script>") == 2 and "<b>" not in page
    texts = [s[0] for doc in embedded_data(page)["docs"] for s in doc["sentences"]]
    assert BREAKOUT in texts
    assert "We urge all parties to return to talks." in texts  # hard-wrapped text is shown on one line


def test_labels_come_from_config_and_all_appear_in_the_legend():
    names = ["pledge", "hedge", "ask", "other"]
    rename = dict(zip(LABELS, names, strict=True))

    def renamed(r: dict) -> dict:
        return r | {"label": rename.get(r["label"]), "probabilities": {rename[k]: p for k, p in r["probabilities"].items()}}

    documents = [{"doc": d["doc"], "rows": [renamed(r) for r in d["rows"]]} for d in sample()]
    page = render_html(documents, names, no_claim_label="other")
    legend = re.search(r'<p class="legend" id="legend">(.*?)</p>', page, re.S).group(1)
    for name in [*names, "abstained"]:
        assert f">{name}<" in legend
    data = json.dumps(embedded_data(page))
    assert not any(label in data or f">{label}" in page for label in LABELS)


def test_claim_labels_get_palette_colours_and_the_no_claim_label_a_neutral_one():
    page = render_html(sample(), LABELS, no_claim_label="none")
    assert f".c0{{--b:{PALETTE[0][0]}" in page and f".c3{{--b:{NEUTRAL[0]}" in page
    assert f".c3{{--b:{PALETTE[3][0]}" in render_html(sample(), LABELS)


def test_report_is_self_contained():
    page = render_html(sample(), LABELS, no_claim_label="none").lower()
    for remote in ["http://", "https://", " src=", " href=", "@import", "url("]:
        assert remote not in page


def test_title_and_label_names_are_escaped_by_the_template():
    names = ["<i>pledge</i>", "hedge", "ask", "other"]
    documents = [
        {"doc": "x", "rows": [row("x", 0, "We will.", "<i>pledge</i>", 0.9) | {"probabilities": {"<i>pledge</i>": 0.9}}]}
    ]
    page = render_html(documents, names, title="<img onerror=alert(1)> & co")
    assert "<img" not in page and "<i>" not in page
    assert "<title>&lt;img onerror=alert(1)&gt; &amp; co</title>" in page
    assert '<option value="0">&lt;i&gt;pledge&lt;/i&gt; (1)</option>' in page
    assert embedded_data(page)["labels"][0] == "<i>pledge</i>"  # the JSON keeps the name; the JS sets it as text


def test_a_label_outside_the_config_is_an_error():
    documents = [{"doc": "x", "rows": [row("x", 0, "Hello.", "praise", 0.9)]}]
    with pytest.raises(ValueError, match="'praise' is not one of"):
        render_html(documents, LABELS)


def test_write_html_creates_the_folder_and_leaves_no_temporary_file(tmp_path: Path):
    target = tmp_path / "new" / "report.html"
    assert write_html(target, sample(), LABELS, title="t") == target
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]
    assert target.read_text(encoding="utf-8") == render_html(sample(), LABELS, title="t")


def test_summary_counts_labels_and_lists_the_most_confident_claims():
    text = document_summary(sample()[0], LABELS, no_claim_label="none", top=2)
    lines = text.splitlines()
    assert lines[:3] == ["alpha: 4 sentences", "  commitment 1, caution 1, request 1, none 1, abstained 0", "  top claims:"]
    assert "0.93  commitment  The minister pledged" in lines[3] and "0.88  request     We urge all parties to return" in lines[4]
    assert len(lines) == 5  # caution (0.71) is third; the heading is no claim


def test_abstained_rows_are_counted_but_never_top_claims():
    beta = sample()[1]
    text = document_summary(beta, LABELS, no_claim_label="none")
    assert "abstained 1" in text and "may review" not in text and "We will fund the bridge." in text
    assert "Tanks crossed" in document_summary(beta, LABELS)  # without a no-claim label every labelled row is a claim


def test_summary_truncates_long_sentences():
    long = {"doc": "long", "rows": [row("long", 0, "We will " + "build " * 50 + "it.", "commitment", 0.9)]}
    claim = document_summary(long, LABELS).splitlines()[-1].split("commitment  ")[1]
    assert len(claim) <= 100 and claim.endswith("…")


def test_summaries_end_with_the_totals():
    text = summaries(sample(), LABELS, no_claim_label="none")
    assert text.count("sentences\n") == 3
    assert text.splitlines()[-1] == "total: 3 documents, 9 sentences: commitment 2, caution 1, request 2, none 3, abstained 1"


# --- real browser ---------------------------------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    """The headless browser; CI must have it (``.ci/run`` installs it), a laptop without it skips."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        reason = "no chromium or chromium-browser on PATH: the HTML report's browser tests need one"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def browse(binary: str, page: Path, tmp_path: Path, *args: str, fragment: str = "") -> str:
    """Load ``page`` in headless Chromium (as root: --no-sandbox), give its JS time to run, return stdout."""
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=2000",
        *args,
        page.as_uri() + fragment,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


class Dom(HTMLParser):
    """The rendered documents: per <article>, its name, count chips and sentences (label, abstained, text, classes, heading)."""

    def __init__(self, dom: str):
        super().__init__()
        self.docs: list[dict] = []
        self._target: str | None = None  # which field the current element's text belongs to
        self._in_h3 = False
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "article":
            self.docs.append({"name": "", "counts": [], "sentences": []})
        elif not self.docs:
            return
        elif tag == "h2":
            self._target = "name"
        elif tag == "h3":
            self._in_h3 = True
        elif tag == "span" and {"chip", "n"} & set(classes):
            self.docs[-1]["counts"].append("")
            self._target = "count"
        elif tag == "span" and "data-label" in attrs:
            sentence = {"label": attrs["data-label"], "abstained": "data-abstained" in attrs, "classes": classes}
            self.docs[-1]["sentences"].append(sentence | {"heading": self._in_h3, "title": attrs.get("title"), "text": ""})
            self._target = "sentence"

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3":
            self._in_h3 = False
        if tag in ("h2", "span"):
            self._target = None

    def handle_data(self, data: str) -> None:
        if self._target == "name":
            self.docs[-1]["name"] += data
        elif self._target == "count":
            self.docs[-1]["counts"][-1] += data
        elif self._target == "sentence":
            self.docs[-1]["sentences"][-1]["text"] += data


@pytest.mark.slow
def test_report_renders_every_sentence_with_its_label_in_chromium(chromium: str, tmp_path: Path):
    documents = sample()
    page = write_html(tmp_path / "report.html", documents, LABELS, no_claim_label="none", page_size=2)
    dom = browse(chromium, page, tmp_path, "--dump-dom")
    assert "page 1 of 2" in dom and "<b>" not in dom
    legend = re.search(r'<p class="legend" id="legend">(.*?)</p>', dom, re.S).group(1)
    assert all(f">{label}<" in legend for label in [*LABELS, "abstained"])

    rendered = Dom(dom).docs
    assert [d["name"] for d in rendered] == ["alpha", "beta"]
    assert rendered[0]["counts"] == ["4 sentences", "commitment 1", "caution 1", "request 1", "none 1"]
    assert rendered[1]["counts"] == ["3 sentences", "commitment 1", "none 1", "abstained 1"]
    for document, shown in zip(documents, rendered, strict=False):
        expected = [
            (" ".join(r["text"].split()), "" if r["abstained"] else r["label"], r["abstained"], r["heading"])
            for r in document["rows"]
        ]
        assert [(s["text"], s["label"], s["abstained"], s["heading"]) for s in shown["sentences"]] == expected
    assert rendered[0]["sentences"][1]["title"].startswith("commitment 0.93 · ")
    assert rendered[1]["sentences"][1]["title"].startswith("abstained · caution 0.41")

    # The filter, set through the URL hash: only documents with a request, every other sentence dimmed.
    filtered = Dom(browse(chromium, page, tmp_path, "--dump-dom", fragment="#label=request")).docs
    assert [d["name"] for d in filtered] == ["alpha", "gamma"]
    for sentence in (s for d in filtered for s in d["sentences"]):
        assert ("dim" in sentence["classes"]) == (sentence["label"] != "request")


@pytest.mark.slow
def test_screenshot_shows_the_highlight_colours(chromium: str, tmp_path: Path):
    page = write_html(tmp_path / "report.html", sample(), LABELS, no_claim_label="none")
    shot = tmp_path / "out.png"
    browse(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1280,900", "--run-all-compositor-stages-before-draw")
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (900, 1280) and pixels.std() > 0.05
    assert len(np.unique((pixels * 255).round().reshape(-1, 3), axis=0)) > 50
    for background in [tint for tint, _ in PALETTE[:3]] + [NEUTRAL[0]]:
        rgb = np.array([int(background[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        assert (np.abs(pixels - rgb).max(axis=-1) < 3 / 255).any(), f"no {background} highlight on screen"


@pytest.mark.slow
def test_500_documents_put_one_page_in_the_dom(chromium: str, tmp_path: Path):
    documents = [
        {
            "doc": f"doc-{i:03d}",
            "rows": [
                row(f"doc-{i:03d}", 0, "Talks resume.", "none", 0.9),
                row(f"doc-{i:03d}", 1, "We may wait.", "caution", 0.8),
            ],
        }
        if i % 5 == 0
        else {"doc": f"doc-{i:03d}", "rows": [row(f"doc-{i:03d}", 0, "Talks resume.", "none", 0.9)]}
        for i in range(500)
    ]
    page = write_html(tmp_path / "big.html", documents, LABELS, no_claim_label="none")
    dom = browse(chromium, page, tmp_path, "--dump-dom")
    assert "page 1 of 25" in dom and dom.count("<article") == 20
    assert [d["name"] for d in Dom(dom).docs] == [f"doc-{i:03d}" for i in range(20)]

    dom = browse(chromium, page, tmp_path, "--dump-dom", fragment="#label=caution&page=2")
    assert "page 2 of 5" in dom and "100 documents with caution" in dom
    assert [d["name"] for d in Dom(dom).docs] == [f"doc-{i:03d}" for i in range(100, 200, 5)]
