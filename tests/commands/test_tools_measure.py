"""The measuring commands: annotator agreement and the learning curve."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import compose_train, corpus_sample, write_jsonl
from matplotlib.image import imread
from omegaconf import open_dict
from sklearn.metrics import cohen_kappa_score

from claimstance.commands import agreement as agreement_tool
from claimstance.commands import learning_curve as curve
from claimstance.data.annotations import AnnotationError
from claimstance.errors import ConfigError, UserError

LABELS = ["commitment", "caution", "request", "none"]

# Ten sentences read twice (c = commitment, k = caution, r = request, n = none):
#   id      a b c d e f g h i j
#   first   c c c k k k r r n n
#   second  c c k k k n r r n c
FIRST = dict(zip("abcdefghij", ["commitment"] * 3 + ["caution"] * 3 + ["request"] * 2 + ["none"] * 2, strict=True))
SECOND = FIRST | {"c": "caution", "f": "none", "j": "commitment"}
# Observed agreement p_o = 7/10 (all but c, f, j). Both passes use c 3, k 3, r 2, n 2 times, so chance agreement
# p_e = (3*3 + 3*3 + 2*2 + 2*2) / 10^2 = 26/100 and kappa = (0.70 - 0.26) / (1 - 0.26) = 0.44 / 0.74 = 22/37 = 0.5946.
# One label against the rest (2x2): commitment agrees on a, b (yes) and six no's, p_o = 8/10, p_e = 0.3*0.3 + 0.7*0.7
# = 0.58, kappa = 0.22/0.42 = 11/21; caution the same (d, e yes; c, f differ); request 1; none: i yes, f and j
# differ, p_o = 0.8, p_e = 0.2*0.2 + 0.8*0.8 = 0.68, kappa = 0.12/0.32 = 3/8.


def test_agreement_matches_kappa_computed_by_hand_and_by_sklearn():
    report = agreement_tool.agreement(FIRST | {"z": "none"}, SECOND, LABELS)  # ids only the first pass has are ignored
    assert report["size"] == 10 and report["raw_agreement"] == pytest.approx(0.7)
    assert report["cohen_kappa"] == pytest.approx(22 / 37)
    ids = sorted(SECOND)
    assert report["cohen_kappa"] == pytest.approx(cohen_kappa_score([FIRST[i] for i in ids], [SECOND[i] for i in ids]))
    assert report["per_label_kappa"] == pytest.approx({"commitment": 11 / 21, "caution": 11 / 21, "request": 1.0, "none": 3 / 8})
    assert report["confusion_first_rows_second_columns"] == [[2, 1, 0, 0], [0, 2, 0, 1], [0, 0, 2, 0], [1, 0, 0, 1]]
    assert [d["id"] for d in report["disagreements"]] == ["c", "f", "j"]


def test_second_pass_with_a_bad_label_or_line_names_file_and_line(tmp_path):
    path = tmp_path / "second_pass.jsonl"
    lines = [
        json.dumps({"id": "a", "label": "commitment"}),
        json.dumps({"id": "b", "label": "Caution"}),
        "",
        json.dumps({"id": "c", "label": "none"}),
        json.dumps({"id": "d"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(AnnotationError) as err:
        agreement_tool.read_second_pass(path, LABELS)
    assert err.value.problems == [  # every bad line at once
        f"{path}:2: label must be one of commitment, caution, request, none",
        f"{path}:5: label must be one of commitment, caution, request, none",
    ]
    path.write_text("\n".join([lines[0], lines[3], "{not json"]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"{path}:3: malformed JSON"):
        agreement_tool.read_second_pass(path, LABELS)
    path.write_text("\n".join([lines[0], lines[3]]) + "\n", encoding="utf-8")
    assert agreement_tool.read_second_pass(path, LABELS) == {"a": "commitment", "c": "none"}


def agreement_cfg(tmp_path, action: str):
    rows = corpus_sample(3)
    write_jsonl(tmp_path / "corpus" / "c.jsonl", rows)
    values = {"annotations": f"{tmp_path}/corpus", "folder": f"{tmp_path}/round", "action": action}
    cfg = compose_train([], tmp_path, "agreement", values=values)
    return cfg, rows


def test_score_action_writes_the_report_and_a_bad_label_exits_2(tmp_path, caplog):
    cfg, rows = agreement_cfg(tmp_path, "score")
    (tmp_path / "round").mkdir()
    second = [{"id": row["id"], "label": row["label"]} for row in rows]
    write_jsonl(tmp_path / "round" / "second_pass.jsonl", second)
    report = agreement_tool.run(cfg)
    assert report["size"] == len(rows) and report["cohen_kappa"] == 1.0
    assert json.loads((tmp_path / "round" / "agreement.json").read_text()) == report

    write_jsonl(tmp_path / "round" / "second_pass.jsonl", second[:1] + [second[1] | {"label": "pledge"}])
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        agreement_tool.run(cfg)
    assert exit_info.value.code == 2
    assert f"{tmp_path}/round/second_pass.jsonl:2: label must be one of" in caplog.text


# --- learning curve --------------------------------------------------------------------------------------------

POINTS = [
    {"train_fraction": 0.25, "train_size": 300, "macro_f1": {"test": 0.5, "challenge": 0.4}, "test_macro_f1_ci95": [0.4, 0.6]},
    {"train_fraction": 0.5, "train_size": 600, "macro_f1": {"test": 0.55, "challenge": 0.45}, "test_macro_f1_ci95": [0.45, 0.65]},
    {"train_fraction": 1.0, "train_size": 1200, "macro_f1": {"test": 0.6}, "test_macro_f1_ci95": [0.5, 0.7]},  # no challenge
]


def test_plot_curve_writes_a_png_even_when_a_split_is_missing(tmp_path):
    path = tmp_path / "curve.png"
    curve.plot_curve(POINTS, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[:2] == (440, 660)  # figsize 6x4 inches at 110 dpi


def test_curve_table_lists_every_fraction_and_marks_a_missing_score():
    lines = curve.curve_table(POINTS).splitlines()
    assert lines[0].split() == ["fraction", "sentences", "test", "challenge"]
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    assert [line.split() for line in lines[2:]] == [
        ["0.25", "300", "0.500", "0.400"],
        ["0.5", "600", "0.550", "0.450"],
        ["1.0", "1200", "0.600", "-"],
    ]


@pytest.mark.parametrize("fractions", [[], [0.5, 0], [1.5], ["half"], [True], 0.5])
def test_fractions_must_be_shares_in_zero_one(fractions):
    with pytest.raises(ConfigError, match=r"fractions must be a non-empty list of numbers in \(0, 1\]"):
        curve.check_fractions(fractions)
    assert curve.check_fractions([0.25, 1]) == [0.25, 1.0]


def test_bad_fractions_exit_2_before_any_training(tmp_path, caplog):
    cfg = compose_train(["model=tiny", "fractions=[0.5,0]", f"curve_output={tmp_path}/lc"], tmp_path, "learning_curve")
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        curve.run(cfg)
    assert exit_info.value.code == 2
    assert "fractions must be a non-empty list of numbers in (0, 1], e.g. [0.25,0.5,1.0]; got [0.5, 0]" in caplog.text
    assert not (tmp_path / "run").exists() and not (tmp_path / "lc.json").exists()  # the 0.5 run never started


@pytest.mark.slow  # two tiny training runs, about 10 s
def test_learning_curve_without_a_challenge_set(tmp_path, caplog):
    write_jsonl(tmp_path / "ann" / "corpus.jsonl", corpus_sample(20))
    overrides = [
        "model=tiny",
        "trainer.args.num_train_epochs=1",
        "logger=none",
        "data=sentences",
        f"data.annotations={tmp_path}/ann",
        "data.challenge=null",
        f"data.output_dir={tmp_path}/processed",
        "fractions=[0.5,1.0]",
        f"curve_output={tmp_path}/curve/learning_curve",
    ]
    cfg = compose_train(overrides, tmp_path, "learning_curve")
    with open_dict(cfg):
        del cfg["hydra"]  # as in a script run: Hydra hands the task its config without its own node
    with caplog.at_level(logging.INFO, logger="claimstance"):
        points = curve.run(cfg)
    saved = json.loads((tmp_path / "curve" / "learning_curve.json").read_text())
    assert saved == points and [p["train_fraction"] for p in saved] == [0.5, 1.0]
    assert [p["train_size"] for p in saved] == [30, 60]  # 60 of the 80 sentences train; half of them, stratified
    assert all(list(p["macro_f1"]) == ["test"] for p in saved)  # no challenge split, and no error for its absence
    assert (tmp_path / "curve" / "learning_curve.png").stat().st_size > 0
    assert curve.curve_table(points) in caplog.text
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["fraction-0.5", "fraction-1.0"]
