"""Article segmentation: exact offsets, wrapped text, headings, line layout, the text reader and the splitter scores."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from claimstance.commands.compare_splitters import build_articles, load_documents, paragraphs_of, run, score
from claimstance.data.textio import InputError, iter_jsonl, iter_lines, read_text
from claimstance.errors import ConfigError
from claimstance.inference.articles import SPLITTERS, Segment, model_text, segment

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_ccd737c3ae17ccd4.txt"

# A wire story, one list of sentences per paragraph; hard-wrapped at 72 columns below.
WIRE = [
    ["The International Olympic Committee will decide in June where the 2030 Winter Games are held, "
     "president Thomas Bach said Wednesday.",
     "He told reporters in Lausanne that the executive board had narrowed the field to two bids."],
    ["\"We want a host that can use existing venues,\" Bach said.",
     "The committee will send an evaluation team to both cities in March, and the vote will follow at the "
     "session in Paris.",
     "Neither bid has asked for a new sliding track."],
    ["Officials in Salt Lake City welcomed the timetable.",
     "They have promised to publish the full budget before the team arrives."],
]  # fmt: skip


def check_offsets(text: str, segments: list[Segment]) -> None:
    """Every segment is the exact slice it names, trimmed, in order and without overlap."""
    previous_end = 0
    for seg in segments:
        assert text[seg.start : seg.end] == seg.text
        assert seg.text == seg.text.strip() and seg.text
        assert seg.start >= previous_end
        previous_end = seg.end
    assert [seg.sentence for seg in segments] == list(range(len(segments)))


def wrap_paragraphs(paragraphs: list[str], width: int, separator: str = "\n\n") -> str:
    return separator.join(textwrap.fill(paragraph, width) for paragraph in paragraphs) + "\n"


def test_seed_wrapped_at_60_gives_the_sentences_of_the_unwrapped_article():
    original = SEED.read_text(encoding="utf-8")
    lines = [line for line in original.splitlines() if line.strip()]
    unwrapped = segment(original)
    check_offsets(original, unwrapped)
    assert len(unwrapped) == 25  # 21 sentences, 2 list items, 2 headings
    for separator in ("\n\n", "\n"):  # paragraphs kept by blank lines, and by line geometry alone
        wrapped_text = wrap_paragraphs(lines, 60, separator)
        wrapped = segment(wrapped_text)
        check_offsets(wrapped_text, wrapped)
        assert any("\n" in seg.text for seg in wrapped)  # wrapped sentences span lines, in the file's own characters
        assert [seg.model_text for seg in wrapped] == [seg.model_text for seg in unwrapped]
        assert [seg.heading for seg in wrapped] == [seg.heading for seg in unwrapped]
    headings = [seg.model_text for seg in unwrapped if seg.heading]
    assert headings == ["NATO’s Commitment to Ukraine’s Future Membership", "Related", "‘In this for the long haul’"]


def fold(text: str, width: int) -> str:
    """``fold -s -w width`` of GNU coreutils 9.1: each line broken after its last blank that fits, widths in UTF-8 bytes."""
    out = []
    for line in text.encode().split(b"\n"):
        while len(line) > width:
            cut = line.rfind(b" ", 0, width) + 1 or width  # fold keeps the blank at the end of the line
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return b"\n".join(out).decode()


def test_fold_matches_gnu_fold_on_a_line_of_curly_quotes():
    line = "- Zelenskyy’s ‘victory plan’: What’s the deal with Ukraine and NATO?"
    assert fold(line, 60) == "- Zelenskyy’s ‘victory plan’: What’s the deal with \nUkraine and NATO?"  # 59 bytes, 51 characters


def test_seed_spaced_and_folded_like_sed_g_and_fold_gives_the_unwrapped_sentences():
    """``sed G`` puts a blank line under every line, ``fold -s -w 60`` wraps by bytes: a wrapped bullet stays whole."""
    original = SEED.read_text(encoding="utf-8")
    spaced = "".join(line + "\n\n" for line in original.split("\n"))
    folded = fold(spaced, 60)
    assert "- Zelenskyy’s ‘victory plan’: What’s the deal with \nUkraine and NATO?" in folded
    unwrapped, wrapped = segment(original), segment(folded)
    check_offsets(folded, wrapped)
    assert len(wrapped) == len(unwrapped) == 25
    assert [" ".join(seg.text.split()) for seg in wrapped] == [" ".join(seg.text.split()) for seg in unwrapped]
    assert [seg.heading for seg in wrapped] == [seg.heading for seg in unwrapped]


def test_wire_story_wrapped_at_72_comes_out_as_sentences_not_lines():
    text = wrap_paragraphs([" ".join(sentences) for sentences in WIRE], 72)
    segments = segment(text)
    check_offsets(text, segments)
    assert sum(bool(line) for line in text.splitlines()) > len(segments)  # the old per-line split gave a fragment a line
    assert [seg.model_text for seg in segments] == [sentence for sentences in WIRE for sentence in sentences]
    assert [seg.paragraph for seg in segments] == [0, 0, 1, 1, 1, 2, 2]
    assert not any(seg.heading for seg in segments)


@pytest.mark.parametrize("separator", ["\n", "\r\n"])
def test_headline_directly_above_the_body_is_its_own_heading(separator):
    body = " ".join(WIRE[0])
    text = separator.join(["Bach: Winter Games host due in June", *textwrap.wrap(body, 60)]) + separator
    segments = segment(text)
    check_offsets(text, segments)
    assert [(seg.model_text, seg.heading) for seg in segments] == [
        ("Bach: Winter Games host due in June", True),
        (WIRE[0][0], False),
        (WIRE[0][1], False),
    ]


def test_the_short_last_line_of_a_wrapped_paragraph_is_not_a_heading():
    body = "Officials in Salt Lake City welcomed the timetable and the shortlist of two cities on Wednesday, said Mayor Erin"
    body += " Mendenhall"
    lines = textwrap.wrap(body, 50)
    assert lines[-1] == "Mayor Erin Mendenhall"  # short, unpunctuated, capitalised: alone it would pass for a heading
    text = "\n".join(["Salt Lake City reacts", *lines, "The vote is in June."])
    segments = segment(text)
    check_offsets(text, segments)
    assert [(seg.model_text, seg.heading) for seg in segments] == [
        ("Salt Lake City reacts", True),
        (body, False),
        ("The vote is in June.", False),
    ]


def test_one_paragraph_per_line_is_not_joined_and_list_items_stand_alone():
    text = "Related\n- First item without a stop\n- Second item, also without one\nThe body starts here. It goes on.\n"
    segments = segment(text)
    check_offsets(text, segments)
    assert [seg.model_text for seg in segments] == [
        "Related",
        "- First item without a stop",
        "- Second item, also without one",
        "The body starts here.",
        "It goes on.",
    ]
    assert [seg.heading for seg in segments] == [True, False, False, False, False]


def test_lines_layout_keeps_one_segment_per_line_with_exact_offsets_under_crlf():
    text = "  First line. Not split here.\r\n\r\n\tSecond line\r\nThird line?  \r\n"
    segments = segment(text, layout="lines")
    check_offsets(text, segments)
    assert [seg.text for seg in segments] == ["First line. Not split here.", "Second line", "Third line?"]
    assert [seg.heading for seg in segments] == [False, True, False]
    assert segments[1].start == text.index("Second")


def test_model_text_collapses_whitespace_and_keeps_hyphens_of_wrapped_compounds():
    assert model_text("NATO Secretary-\r\n  General Mark\n Rutte  said") == "NATO Secretary-General Mark Rutte said"
    assert model_text("a dash -\nthen more") == "a dash - then more"


@pytest.mark.parametrize("splitter", sorted(SPLITTERS))
def test_every_splitter_splits_a_wrapped_paragraph(splitter):
    text = "The bank held rates on Thursday. Its governor said cuts\nwould come later. Markets rose.\n"
    segments = segment(text, splitter=splitter)
    check_offsets(text, segments)
    assert [seg.model_text for seg in segments] == [
        "The bank held rates on Thursday.",
        "Its governor said cuts would come later.",
        "Markets rose.",
    ]


def test_unknown_layout_or_splitter_names_the_allowed_values():
    with pytest.raises(ConfigError, match="layout must be one of paragraphs, lines, got 'pages'"):
        segment("Text.", layout="pages")
    with pytest.raises(ConfigError, match="splitter must be one of .*syntok.*got 'nltk'"):
        segment("Text.", splitter="nltk")


def test_blank_text_has_no_segments():
    assert segment("") == [] and segment(" \n\t\n") == [] and segment("\n\n", layout="lines") == []


@pytest.mark.slow
def test_importing_articles_loads_no_model_or_splitter_library():
    code = "import sys, claimstance.inference.articles; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.replace("'", '"')
    )
    assert not {"torch", "transformers", "pysbd", "syntok", "blingfire", "sentencex"} & set(loaded)


def test_read_text_keeps_bom_and_line_endings_so_offsets_are_true(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffHeadline\r\nFirst sentence. Second one.\r\n".encode())
    text = read_text(path)
    assert text.startswith("\ufeffHeadline\r\n") and len(text) == len(path.read_bytes().decode())
    segments = segment(text)
    check_offsets(text, segments)
    assert [(seg.start, seg.text, seg.heading) for seg in segments][0] == (1, "Headline", True)
    assert [line for _, line in iter_lines(path)] == ["Headline", "First sentence. Second one."]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"fine\nbad \x00 byte\n", ":2: NUL byte; the input is binary, not text"),
        (b"one\ntwo\nabc\xffdef\n", ":3: invalid UTF-8 byte at column 4; save the file as UTF-8"),
    ],
)
def test_binary_or_non_utf8_input_names_file_and_line(tmp_path, data, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(InputError, match=f"^{path}{message}$"):
        read_text(path)
    with pytest.raises(InputError, match=f"^{path}{message}$"):
        list(iter_lines(path))


def test_iter_jsonl_names_the_malformed_line_and_skips_blank_ones(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert list(iter_jsonl(path)) == [(1, {"text": "a"}), (3, {"text": "b"})]
    path.write_text('{"text": "a"}\n\n{"text": \n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{path}:3: malformed JSON \(Expecting value\)$"):
        list(iter_jsonl(path))
    path.write_text('{"text": "a"}\n["b"]\n', encoding="utf-8")
    with pytest.raises(InputError, match=f"^{path}:2: expected a JSON object, got list$"):
        list(iter_jsonl(path))


def test_missing_file_is_named_at_the_call(tmp_path):
    for reader in (read_text, iter_lines, iter_jsonl):
        with pytest.raises(InputError, match="missing.txt: input file does not exist"):
            reader(tmp_path / "missing.txt")


def test_score_counts_boundaries_and_exact_sentences():
    gold = [(0, 10), (11, 20), (21, 30)]
    predicted = [(0, 10), (11, 25), (26, 30)]  # ends 10 and 30 right, 25 wrong, 20 missed
    result = score([(predicted, gold), ([(0, 5)], [(0, 5)])])
    assert (result["gold"], result["predicted"], result["correct"], result["exact"]) == (4, 4, 3, 2)
    assert result["precision"] == pytest.approx(3 / 4) and result["recall"] == pytest.approx(3 / 4)
    result = score([([(0, 30)], gold)])
    assert (result["precision"], result["recall"]) == (1.0, pytest.approx(1 / 3))
    assert result["f1"] == pytest.approx(2 * (1 / 3) / (1 + 1 / 3))


def test_gold_articles_put_headings_alone_and_locate_every_sentence():
    sentences = ["A headline without a stop", "First sentence.", "Second sentence.", "Third one.", "Fourth one."]
    paragraphs = paragraphs_of(sentences, random.Random(0))
    assert paragraphs[0] == ["A headline without a stop"] and sum(paragraphs, []) == sentences
    layouts = build_articles({"doc-1": sentences}, [20], seed=0)
    assert sorted(layouts) == ["unwrapped", "wrapped-20"]
    for (article,) in layouts.values():
        assert [model_text(article.text[start:end]) for start, end in article.sentences] == sentences


def test_compare_splitters_writes_the_table_with_the_old_mode_as_before(tmp_path):
    rows = [
        {
            "doc": "d1",
            "position": 2,
            "text": "Shares rose in early trading, then fell back as bond yields climbed in the afternoon.",
        },
        {"doc": "d1", "position": 1, "text": "Markets slide on rate fears"},
        {
            "doc": "d2",
            "position": 1,
            "text": "The minister said on Monday that the bill would be published before the summer recess.",
        },
    ]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "field.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    cfg = OmegaConf.create(
        {"documents": str(tmp_path / "docs"), "splitters": ["syntok"], "widths": [30], "seed": 0, "repeats": 1,
         "output": str(tmp_path / "out" / "splitters")}
    )  # fmt: skip
    table = run(cfg)
    assert [(row["splitter"], row["layout"]) for row in table] == [
        ("before", "unwrapped"), ("before", "wrapped-30"), ("syntok", "unwrapped"), ("syntok", "wrapped-30")
    ]  # fmt: skip
    assert all(row["gold"] == 3 for row in table)
    assert table[0]["f1"] > table[1]["f1"]  # the old mode cuts the wrapped article at every line
    page = (tmp_path / "out" / "splitters.md").read_text(encoding="utf-8")
    assert re.search(r"^\| syntok +\| wrapped-30 +\| +1\.000 \|", page, re.M) and "python scripts/compare_splitters.py" in page
    assert json.loads((tmp_path / "out" / "splitters.json").read_text(encoding="utf-8"))["best"] == "syntok"


def test_documents_come_in_position_order_and_a_bad_row_is_named(tmp_path):
    rows = [
        {"doc": "b", "position": 2, "text": " Two. "},
        {"doc": "a", "position": 1, "text": "A."},
        {"doc": "b", "position": 1, "text": "One."},
    ]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert load_documents(tmp_path) == {"a": ["A."], "b": ["One.", "Two."]}
    with pytest.raises(InputError, match="no \\*.jsonl document files"):
        load_documents(tmp_path / "empty")
    bad_rows = [
        ({"doc": "c", "position": 1}, "field 'text' must be a string, got None"),
        ({"doc": "c", "position": "first", "text": "C."}, "field 'position' must be a number, got 'first'"),
    ]
    for bad, message in bad_rows:
        (tmp_path / "y.jsonl").write_text(json.dumps(bad) + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=f"^{tmp_path / 'y.jsonl'}:1: {re.escape(message)}$"):
            load_documents(tmp_path)
