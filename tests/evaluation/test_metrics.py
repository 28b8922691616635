"""scikit-learn scores against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from claimstance.evaluation.metrics import bootstrap_macro_f1, format_report, macro_f1_from_confusion, score, write_report

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
    from matplotlib.image import imread

    report = score([0, 1, 2, 2], [0, 1, 2, 1], LABELS)
    text = format_report(report, "test")
    assert "macro-F1 0.778" in text and "confusion matrix" in text
    assert write_report(report, tmp_path, "test") == text
    assert (tmp_path / "test_report.txt").read_text() == text + "\n"
    saved = json.loads((tmp_path / "test_report.json").read_text())
    assert saved["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]] and saved["macro_f1"] == pytest.approx(
        report["macro_f1"]
    )
    # real PNGs at the project's one resolution (110 dpi): figsize (11, 4.5) and (7, 4) inches
    for name, (height, width) in (("test_confusion_matrix.png", (495, 1210)), ("test_per_class.png", (440, 770))):
        image = imread(tmp_path / name)
        assert image.shape[:2] == (height, width), name
        assert image[..., :3].std() > 0.05, f"{name} is blank"  # something was drawn


def test_claim_macro_f1_leaves_out_the_no_claim_label():
    labels = [*LABELS, "none"]
    # commitment right twice, caution once wrong (-> none), request right, none right twice
    y_true = [0, 0, 1, 2, 3, 3]
    y_pred = [0, 0, 3, 2, 3, 3]
    report = score(y_true, y_pred, labels, no_claim_label="none")
    # commitment F1 1, caution F1 0, request F1 1 -> 2/3; none (P 2/3, R 1, F1 0.8) only in the 4-way figure
    assert report["claim_macro_f1"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((1 + 0 + 1 + 0.8) / 4)
    assert "claim_macro_f1" not in score(y_true, y_pred, labels)


def test_bootstrap_interval_brackets_the_score_and_widens_when_documents_are_resampled_whole():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 600)
    y_pred = np.where(rng.random(600) < 0.75, y_true, rng.integers(0, 3, 600))
    # 20 documents whose sentences share one fate: all right or 50% wrong together
    documents = np.repeat(np.arange(20), 30)
    hard = np.isin(documents, np.arange(10))
    y_pred = np.where(hard & (rng.random(600) < 0.5), (y_true + 1) % 3, y_true)
    point = score(y_true.tolist(), y_pred.tolist(), LABELS)["macro_f1"]
    low_s, high_s = bootstrap_macro_f1(y_true, y_pred, 3)
    low_d, high_d = bootstrap_macro_f1(y_true, y_pred, 3, groups=documents.astype(str))
    assert low_s <= point <= high_s and low_d <= point <= high_d
    assert high_d - low_d > 1.5 * (high_s - low_s)  # clustered errors: the honest interval is wider


def test_pair_consistency_counts_pairs_with_both_sentences_right():
    groups = ["p1", "p1", "p2", "p2", "p3", "p3"]
    y_true = [0, 1, 2, 3, 0, 2]
    y_pred = [0, 1, 2, 2, 0, 2]  # p2 has one wrong
    report = score(y_true, y_pred, [*LABELS, "none"], groups=groups)
    assert report["pairs"] == {"pairs": 3, "consistency": pytest.approx(2 / 3)}
    documents = ["d1", "d1", "d1", "d2", "d2", "d2"]
    assert "pairs" not in score(y_true, y_pred, [*LABELS, "none"], groups=documents)


def test_macro_f1_from_confusion_equals_sklearn():
    from sklearn.metrics import confusion_matrix, f1_score

    rng = np.random.default_rng(1)
    for _ in range(20):
        y_true, y_pred = rng.integers(0, 4, 50), rng.integers(0, 3, 50)  # label 3 never predicted: zero_division
        expected = f1_score(y_true, y_pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
        assert macro_f1_from_confusion(confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3])) == pytest.approx(expected)


@pytest.mark.slow  # loads torch
def test_balanced_class_weights_follow_inverse_frequency():
    from claimstance.errors import ConfigError
    from claimstance.training.transformer import class_weights

    weights = class_weights("balanced", [0, 0, 0, 1], 3)
    # n / (k * count) with k = 2 labels present: 4 / (2 * 3) and 4 / (2 * 1); an absent label keeps 1
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 1.0])
    assert class_weights(None, [0, 1], 2) is None
    with pytest.raises(ConfigError, match="trainer.class_weights must be balanced or null"):
        class_weights("inverse", [0, 1], 2)


@pytest.mark.slow  # loads torch and MiniLM
def test_frozen_embeddings_are_left_out_of_training():
    from claimstance.config import minilm_dir
    from claimstance.training.models import load_pretrained

    model, _ = load_pretrained(minilm_dir(), ["a", "b"], freeze_embeddings=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "bert.embeddings.word_embeddings.weight" not in trainable
    assert "classifier.weight" in trainable and any("encoder.layer.0" in name for name in trainable)
    model, _ = load_pretrained(minilm_dir(), ["a", "b"], freeze_layers=2)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert not any("encoder.layer.0." in name or "encoder.layer.1." in name for name in trainable)
    assert any("encoder.layer.2." in name for name in trainable) and "bert.embeddings.word_embeddings.weight" not in trainable


def tiny_encoder(architecture: str):
    """A randomly initialised 3-layer classifier of another architecture, built from its config (no download)."""
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    if architecture == "distilbert":
        config = DistilBertConfig(vocab_size=100, dim=16, n_layers=3, n_heads=2, hidden_dim=32, num_labels=2)
        return (
            DistilBertForSequenceClassification(config),
            "distilbert.transformer.layer",
            "distilbert.embeddings.word_embeddings",
        )
    config = RobertaConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, num_labels=2
    )
    return RobertaForSequenceClassification(config), "roberta.encoder.layer", "roberta.embeddings.word_embeddings"


@pytest.mark.slow  # loads torch
@pytest.mark.parametrize("architecture", ["distilbert", "roberta"])
def test_freeze_layers_carries_over_to_other_encoders(architecture):
    from claimstance.training.models import ModelLoadError, freeze_lower_layers

    model, layers, embeddings = tiny_encoder(architecture)
    freeze_lower_layers(model, 2)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert f"{embeddings}.weight" not in trainable
    assert not any(name.startswith((f"{layers}.0.", f"{layers}.1.")) for name in trainable)
    assert any(name.startswith(f"{layers}.2.") for name in trainable) and any("classifier" in name for name in trainable)
    with pytest.raises(ModelLoadError, match=r"model.freeze_layers=4: .* has only 3 encoder layers.*model.freeze_layers=0"):
        freeze_lower_layers(tiny_encoder(architecture)[0], 4)


@pytest.mark.slow  # loads torch
def test_a_model_without_a_layer_list_names_the_setting_to_turn_off():
    import torch

    from claimstance.training.models import ModelLoadError, freeze_lower_layers

    class Flat(torch.nn.Module):  # embeddings straight into a head: nothing to freeze layer by layer
        def __init__(self):
            super().__init__()
            self.embed, self.head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2)
            self.base_model = self

        def get_input_embeddings(self):
            return self.embed

    model = Flat()
    freeze_lower_layers(model, 0)  # embeddings only: fine
    assert not model.embed.weight.requires_grad and model.head.weight.requires_grad
    with pytest.raises(ModelLoadError, match=r"model.freeze_layers=2: Flat has no list of encoder layers.*model.freeze_layers=0"):
        freeze_lower_layers(model, 2)


def test_coverage_at_reports_what_each_threshold_answers_and_how_precisely():
    from claimstance.evaluation.calibration import coverage_at

    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.55, 0.45]])
    gold = [0, 1, 1, 0]  # right, wrong, right, right
    rows = coverage_at(probs, gold, thresholds=(0.5, 0.8, 0.9, 0.99))
    assert rows == [
        {"min_confidence": 0.5, "coverage": 1.0, "precision": 0.75},
        {"min_confidence": 0.8, "coverage": 0.5, "precision": 0.5},
        {"min_confidence": 0.9, "coverage": 0.25, "precision": 1.0},
        {"min_confidence": 0.99, "coverage": 0.0, "precision": None},
    ]
