"""scikit-learn scores against values computed by hand."""

from __future__ import annotations

import pytest

from claimstance.metrics import format_report, score, write_report

LABELS = ["commitment", "caution", "request"]


def test_scores_match_hand_computation():
    # true: c c c k k r ; predicted: c c k k r r
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    report = score(y_true, y_pred, LABELS)
    assert report["accuracy"] == pytest.approx(4 / 6)
    # commitment P=2/2 R=2/3 F1=0.8; caution P=1/2 R=1/2 F1=0.5; request P=1/2 R=1 F1=2/3
    assert report["per_class"]["commitment"]["f1-score"] == pytest.approx(0.8)
    assert report["per_class"]["caution"]["precision"] == pytest.approx(0.5)
    assert report["per_class"]["request"]["recall"] == pytest.approx(1.0)
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert report["micro_f1"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_label_never_predicted_scores_zero_without_warning_noise():
    report = score([0, 1, 2], [0, 0, 0], LABELS)
    assert report["per_class"]["request"]["f1-score"] == 0.0
    assert report["per_class"]["request"]["support"] == 1


def test_report_text_and_files(tmp_path):
    report = score([0, 1, 2, 2], [0, 1, 2, 1], LABELS)
    text = format_report(report, "test")
    assert "macro-F1 0.778" in text and "confusion matrix" in text
    write_report(report, tmp_path, "test")
    for name in ("test_report.txt", "test_report.json", "test_confusion_matrix.png", "test_per_class.png"):
        assert (tmp_path / name).stat().st_size > 0
