"""The audit finds labels that were put wrong on purpose, reports them ranked, and measures itself with inject.share."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, write_jsonl

from claimstance.commands.audit import flip_labels, injection_scores, run

ACTORS = ["the council", "the ministry", "the union", "the agency", "the board", "the regulator", "the mayor", "the court"]
THINGS = ["bridge", "clinic", "school", "rail line", "port", "library", "grant", "levy"]
TEMPLATES = {  # four labels a bag of words can tell apart
    "commitment": "{actor} will build the {thing} and pledged to fund it in full by {year}",
    "caution": "{actor} warned the {thing} may be delayed and could be cancelled if costs rise in {year}",
    "request": "residents urged {actor} to reconsider the {thing} and demanded a vote before {year}",
    "none": "the {thing} reported figures that rose by three percent in {year} after a quiet season",
}
WRONG = {"commitment-3": "none", "caution-5": "request", "request-7": "commitment", "none-9": "caution"}


def synthetic_corpus(folder: Path, per_label: int = 24, wrong: dict[str, str] | None = None) -> Path:
    """``per_label`` distinct sentences per label; the ids in ``wrong`` carry the label given there instead."""
    rows = []
    for label, template in TEMPLATES.items():
        for i in range(per_label):
            text = template.format(actor=ACTORS[i % 8], thing=THINGS[(i // 8 + i) % 8], year=2020 + i)
            row_id = f"{label}-{i}"
            given = (wrong or {}).get(row_id, label)
            rows.append({"id": row_id, "text": text, "label": given, "source": "test", "domain": "synthetic"})
    return write_jsonl(folder / "corpus.jsonl", rows).parent


def audit_cfg(tmp_path: Path, corpus: Path, *overrides: str):
    return compose_train(["data=sentences", *overrides], tmp_path, config_name="audit", values={"data.annotations": str(corpus)})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_audit_ranks_the_wrong_labels_first(tmp_path):
    cfg = audit_cfg(tmp_path, synthetic_corpus(tmp_path / "ann", wrong=WRONG), "folds=4")
    flagged = run(cfg)
    out = Path(cfg.output_dir)
    issues = read_jsonl(out / "issues.jsonl")
    assert flagged == len(issues)
    assert {row["id"] for row in issues[: len(WRONG)]} == set(WRONG)  # the four wrong labels are the top four
    for row in issues[: len(WRONG)]:
        assert row["given_label"] == WRONG[row["id"]]
        assert row["suggested_label"] == row["id"].split("-")[0]  # the label the sentence was written for
        assert row["confidence"] == max(row["probabilities"].values())
        assert row["self_confidence"] == row["probabilities"][row["given_label"]]
    assert [row["rank"] for row in issues] == list(range(1, len(issues) + 1))
    assert [row["label_quality"] for row in issues] == sorted(row["label_quality"] for row in issues)
    page = (out / "audit.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page.split("</head>")[1]
    for row_id in WRONG:
        assert row_id in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == 96 and summary["folds"] == 4 and "injected" not in summary


def test_injected_errors_are_found_and_scored(tmp_path):
    cfg = audit_cfg(tmp_path, synthetic_corpus(tmp_path / "ann"), "folds=4", "inject.share=0.05", "inject.seed=3")
    run(cfg)
    out = Path(cfg.output_dir)
    moved = read_jsonl(out / "injected.jsonl")
    assert len(moved) == round(0.05 * 96)
    assert all(row["original_label"] != row["given_label"] for row in moved)
    scores = json.loads((out / "summary.json").read_text())["injected"]
    assert scores["precision_at_flipped"] == 1.0  # the moved rows have the lowest label quality of all
    # cleanlab's noise-rate filter may leave out one of five (it estimates how many per label pair): most are flagged
    assert scores["recall"] >= 0.8 and scores["precision"] == 1.0
    assert scores["flagged_and_flipped"] == sum(row["flagged"] for row in moved)
    issues = {row["id"]: row for row in read_jsonl(out / "issues.jsonl")}
    for row in moved:
        if row["flagged"]:
            assert issues[row["id"]]["injected"] and issues[row["id"]]["suggested_label"] == row["original_label"]
    assert "moved on purpose" in (out / "audit.html").read_text(encoding="utf-8")


def test_flipping_is_seeded_and_always_changes_the_label():
    given = np.arange(200) % 4
    noisy, flipped = flip_labels(given, 4, 0.05, seed=7)
    again, flipped_again = flip_labels(given, 4, 0.05, seed=7)
    assert len(flipped) == 10 and (noisy != given).sum() == 10
    assert (noisy[flipped] != given[flipped]).all()
    assert (again == noisy).all() and (flipped_again == flipped).all()
    assert not (flip_labels(given, 4, 0.05, seed=8)[1] == flipped).all()


def test_injection_scores_count_hits_against_flags():
    quality = np.array([0.1, 0.9, 0.2, 0.8, 0.05])
    scores = injection_scores(flagged=np.array([4, 0, 2]), quality=quality, flipped=np.array([0, 1]))
    assert scores["precision"] == pytest.approx(1 / 3) or scores["precision"] == 0.3333
    assert scores["recall"] == 0.5
    assert scores["precision_at_flipped"] == 0.5  # the two lowest qualities are rows 4 and 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("filter_by=by_magic", "filter_by must be one of"),
        ("rank_by=loudness", "rank_by must be one of"),
        ("splits=[train,nope]", "splits: nope not in the prepared dataset"),
        ("folds=40", "too few rows for 40 folds"),
        ("inject.share=1.5", "inject.share must be in"),
    ],
)
def test_bad_options_exit_2_with_one_message(tmp_path, caplog, override, message):
    cfg = audit_cfg(tmp_path, synthetic_corpus(tmp_path / "ann"), override)
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    assert message in caplog.text
    assert not Path(cfg.output_dir).exists()


@pytest.mark.slow
def test_the_transformer_kind_audits_through_the_same_folds(tmp_path):
    cfg = audit_cfg(
        tmp_path,
        synthetic_corpus(tmp_path / "ann", per_label=12),
        "model=tiny",
        "folds=2",
        "trainer.args.num_train_epochs=1",
        "trainer.args.learning_rate=1e-3",
    )
    run(cfg)
    summary = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert summary["total"] == 48 and summary["folds"] == 2 and summary["model"]
    assert 0 <= summary["accuracy"] <= 1


def test_without_cleanlab_the_audit_says_which_extra_to_install(tmp_path, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanlab", None)  # makes `import cleanlab` raise ImportError
    cfg = audit_cfg(tmp_path, tmp_path / "never_read")
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2 and "pip install 'claimstance[quality]'" in caplog.text
