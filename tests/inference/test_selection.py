"""Picking what to label next: uncertainty order, balance over predicted labels, near-duplicates, the select command."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, write_jsonl

from claimstance.errors import ConfigError
from claimstance.inference.selection import NearDuplicateFilter, ranked, select, uncertainty

# rows chosen so that the three strategies disagree: margin, entropy and least confidence each know their answer
POOL = np.array(
    [
        [0.98, 0.01, 0.01],  # 0 sure
        [0.50, 0.49, 0.01],  # 1 torn between two labels: smallest margin
        [0.40, 0.30, 0.30],  # 2 spread over all three: highest entropy, lowest top probability
        [0.45, 0.45, 0.10],  # 3 an exact tie between two
        [0.70, 0.20, 0.10],  # 4 fairly sure
    ]
)
TEXTS = [f"sentence number {word} about something else entirely" for word in ("one", "two", "three", "four", "five")]


def test_margin_picks_the_two_way_ties_first():
    assert ranked(uncertainty(POOL, "margin")).tolist() == [3, 1, 2, 4, 0]


def test_entropy_picks_the_spread_distribution_first():
    # unlike margin, entropy ranks the fairly sure row 4 (mass on all three labels) above the two-way row 1
    assert ranked(uncertainty(POOL, "entropy")).tolist() == [2, 3, 4, 1, 0]


def test_least_confidence_follows_the_top_probability():
    assert ranked(uncertainty(POOL, "least_confidence")).tolist() == [2, 3, 1, 4, 0]
    assert uncertainty(POOL, "least_confidence")[0] == pytest.approx(0.02)


def test_entropy_is_normalised_to_one_for_a_uniform_row():
    assert uncertainty(np.full((1, 4), 0.25), "entropy")[0] == pytest.approx(1.0)
    assert uncertainty(np.array([[1.0, 0.0, 0.0, 0.0]]), "entropy")[0] == pytest.approx(0.0)


def test_select_returns_the_top_n_with_every_score():
    picked, scores = select(POOL, TEXTS, n=2, strategy="margin")
    assert picked == [3, 1]
    assert scores[3] == pytest.approx(1.0)
    assert scores[0] == pytest.approx(1 - 0.97)


def test_equal_scores_keep_input_order():
    assert select(np.tile([[0.5, 0.5]], (4, 1)), TEXTS[:4], n=4)[0] == [0, 1, 2, 3]


def test_a_larger_n_than_the_pool_returns_the_pool():
    assert sorted(select(POOL, TEXTS, n=50)[0]) == [0, 1, 2, 3, 4]


def test_balance_gives_a_rarely_predicted_label_its_share():
    # six rows predicted label 0, all more uncertain than the two predicted label 1
    pool = np.array([[0.51, 0.49]] * 6 + [[0.2, 0.8], [0.1, 0.9]])
    texts = [f"text {i} with its own words number {i}" for i in range(8)]
    plain, _ = select(pool, texts, n=4, strategy="margin")
    balanced, _ = select(pool, texts, n=4, strategy="margin", balance=True)
    assert plain == [0, 1, 2, 3]
    assert sorted(int(pool[i].argmax()) for i in balanced) == [0, 0, 1, 1]
    assert balanced == [0, 6, 1, 7]  # each round: the most uncertain head first


def test_balance_fills_from_other_labels_when_one_runs_out():
    pool = np.array([[0.51, 0.49]] * 5 + [[0.2, 0.8]])
    texts = [f"text {i} with its own words number {i}" for i in range(6)]
    picked, _ = select(pool, texts, n=4, balance=True)
    assert len(picked) == 4 and 5 in picked


def test_near_duplicates_of_a_pick_are_skipped():
    texts = [
        "The minister said the plan will go ahead next year.",
        "The minister said the plan will go ahead next year!",  # a near-copy of the first
        "Union leaders urged members to reject the offer.",
    ]
    pool = np.array([[0.5, 0.5], [0.5, 0.5], [0.6, 0.4]])
    picked, _ = select(pool, texts, n=2, duplicates=NearDuplicateFilter(0.7))
    assert picked == [0, 2]
    assert select(pool, texts, n=2)[0] == [0, 1]  # without the filter the copy is picked


def test_sentences_already_labelled_are_excluded():
    labelled = ["the minister said the plan will go ahead next year"]
    texts = ["The minister said the plan will go ahead next year.", "Union leaders urged members to reject the offer."]
    picked, _ = select(np.array([[0.5, 0.5], [0.9, 0.1]]), texts, n=2, duplicates=NearDuplicateFilter(0.7, existing=labelled))
    assert picked == [1]


def test_bad_knobs_are_config_errors():
    with pytest.raises(ConfigError, match="strategy must be one of"):
        uncertainty(POOL, "random")
    with pytest.raises(ConfigError, match="n must be a positive"):
        select(POOL, TEXTS, n=0)
    with pytest.raises(ConfigError, match="duplicate_threshold"):
        NearDuplicateFilter(1.5)


def select_cfg(tmp_path: Path, model_dir: Path, *overrides: str):
    return compose_train(list(overrides), tmp_path, config_name="select_next", values={"model_dir": str(model_dir)})


@pytest.mark.slow
def test_select_command_ranks_a_pool_and_drops_labelled_and_copied_sentences(tiny_export, tmp_path):
    from claimstance.commands.select_next import run
    from claimstance.inference.predictor import Predictor

    sentences = [
        "The council will build three new schools by 2027.",
        "The council will build three new schools by 2027 .",
        "Officials warned the deal could still collapse.",
        "Residents urged the mayor to reopen the library.",
        "The river rose two metres overnight.",
        "The company may delay the launch if costs rise.",
        "Ministers pledged to cut waiting lists this winter.",
    ]
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    labelled = write_jsonl(tmp_path / "labelled" / "done.jsonl", [{"text": sentences[4], "label": "none"}])
    output = tmp_path / "out" / "next.jsonl"
    cfg = select_cfg(
        tmp_path, tiny_export, f"input={pool}", f"output={output}", "n=4", "strategy=entropy", f"exclude={labelled.parent}"
    )
    assert run(cfg) == 4
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    probabilities = Predictor(tiny_export).predict_proba(sentences)
    expected_scores = uncertainty(probabilities, "entropy")
    texts = [row["text"] for row in rows]
    assert sentences[4] not in texts  # already labelled
    assert not (sentences[0] in texts and sentences[1] in texts)  # near-copies
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    for row in rows:
        i = sentences.index(row["text"])
        assert row["priority"] == pytest.approx(expected_scores[i], abs=1e-4)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
        assert {"doc", "sentence", "start", "end", "id"} <= set(row)
    assert [row["priority"] for row in rows] == sorted((row["priority"] for row in rows), reverse=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [("n=0", "n must be a positive"), ("strategy=random", "strategy must be one of"), ("format=csv", "format must be one of")],
)
def test_bad_select_options_exit_2_before_the_model_loads(tmp_path, caplog, override, message):
    from claimstance.commands.select_next import run

    pool = tmp_path / "pool.txt"
    pool.write_text("One sentence.\n", encoding="utf-8")
    output = tmp_path / "next.jsonl"
    cfg = select_cfg(tmp_path, tmp_path / "no_model", f"input={pool}", f"output={output}", override)
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2 and message in caplog.text
    assert not output.exists()


@pytest.mark.slow
def test_select_writes_label_studio_tasks_with_the_model_label_as_pre_annotation(tiny_export, tmp_path):
    from claimstance.commands.select_next import run

    rows = [{"id": f"s{i}", "text": f"Officials said plan {i} may change."} for i in range(6)]
    pool = write_jsonl(tmp_path / "pool.jsonl", rows)
    output, config = tmp_path / "tasks.json", tmp_path / "config.xml"
    options = (f"input={pool}", f"output={output}", "n=3", "format=labelstudio", f"label_config={config}")
    cfg = select_cfg(tmp_path, tiny_export, *options)
    assert run(cfg) == 3
    tasks = json.loads(output.read_text(encoding="utf-8"))
    assert len(tasks) == 3 and {task["data"]["id"] for task in tasks} <= {f"s{i}" for i in range(6)}
    for task in tasks:
        (prediction,) = task["predictions"]
        probabilities = task["data"]["probabilities"]
        assert prediction["result"][0]["value"]["choices"] == [max(probabilities, key=probabilities.get)]
        assert 0 < prediction["score"] <= 1 and task["data"]["rank"] in (1, 2, 3)
    assert "<Choices" in config.read_text(encoding="utf-8")
