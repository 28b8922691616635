"""Out-of-fold probabilities: no row is predicted by a model that saw it, groups stay whole, bad fold counts fail early."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from omegaconf import OmegaConf

from claimstance.errors import ConfigError, UserError
from claimstance.training.crossval import fold_indices, kind_factory, out_of_fold

LABELS = ["yes", "no", "maybe"]


def rows(n_per_label: int = 12, group_size: int = 1) -> Dataset:
    labels = [i % len(LABELS) for i in range(n_per_label * len(LABELS))]
    return Dataset.from_dict(
        {
            "id": [f"r{i}" for i in range(len(labels))],
            "text": [f"sentence {i}" for i in range(len(labels))],
            "label": labels,
            "group": [f"g{i // group_size}" for i in range(len(labels))],
        },
        features=Features(
            {"id": Value("string"), "text": Value("string"), "label": ClassLabel(names=LABELS), "group": Value("string")}
        ),
    )


class Memoriser:
    """A fake model kind: a row it trained or validated on gets a huge logit for label 0, any other row flat logits."""

    fitted: list[set[str]] = []

    def __init__(self, labels):
        self.labels = list(labels)

    def fit(self, dataset: DatasetDict, cfg, run_dir: Path) -> dict:
        assert run_dir.is_dir()
        self.seen = set(dataset["train"]["id"]) | set(dataset["validation"]["id"])
        assert not set(dataset["train"]["id"]) & set(dataset["validation"]["id"])
        Memoriser.fitted.append(self.seen)
        return {}

    def logits(self, split: Dataset) -> np.ndarray:
        return np.array([[50.0 if i in self.seen else 0.0, 0.0, 0.0] for i in split["id"]])


def test_every_row_is_held_out_exactly_once_and_labels_are_stratified():
    data = rows()
    folds = fold_indices(data["label"], None, 4, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(len(data)))
    for _, h in folds:
        assert Counter(np.asarray(data["label"])[h].tolist()) == {0: 3, 1: 3, 2: 3}


def test_rows_that_share_a_group_stay_in_one_fold():
    data = rows(group_size=3)
    groups = data["group"]
    for train, held in fold_indices(data["label"], groups, 3, seed=1):
        assert not {groups[i] for i in train} & {groups[i] for i in held}


def test_out_of_fold_rows_come_from_models_that_never_saw_them():
    Memoriser.fitted = []
    data = rows()
    oof = out_of_fold(data, lambda: Memoriser(LABELS), OmegaConf.create({}), folds=3, seed=0, validation_share=0.2)
    assert len(Memoriser.fitted) == 3
    np.testing.assert_allclose(oof.probabilities, 1 / 3)  # a model that had seen a row would give it ~1 on label 0
    assert sorted(Counter(oof.fold.tolist()).values()) == [12, 12, 12]
    assert not oof.grouped


def test_a_label_too_rare_for_the_folds_is_named():
    data = rows(n_per_label=2)
    with pytest.raises(UserError, match="'maybe' has 2.*at least 5"):
        fold_indices(data["label"], None, 5, seed=0, names=LABELS)


def test_too_few_groups_and_too_few_folds_fail():
    data = rows(group_size=12)  # three groups
    with pytest.raises(UserError, match="only 3 groups for 4 folds"):
        fold_indices(data["label"], data["group"], 4, seed=0)
    with pytest.raises(ConfigError, match="folds must be an integer >= 2"):
        fold_indices(data["label"], None, 1, seed=0)


def test_a_model_config_that_is_not_a_kind_is_a_config_error():
    cfg = OmegaConf.create({"model": {"_target_": "collections.Counter"}})
    with pytest.raises(ConfigError, match="not a model kind"):
        kind_factory(cfg, LABELS)()


def test_the_tfidf_kind_gives_probabilities_in_label_order():
    cfg = OmegaConf.create({"model": {"_target_": "claimstance.training.baseline.TfidfLogreg"}})
    texts = ["we will build it", "we will not do it", "perhaps we might"] * 8
    data = rows(n_per_label=8)
    data = data.remove_columns("text").add_column("text", texts)
    oof = out_of_fold(data, kind_factory(cfg, LABELS), cfg, folds=4, seed=0)
    np.testing.assert_allclose(oof.probabilities.sum(axis=1), 1.0)
    assert (oof.probabilities.argmax(axis=1) == np.asarray(data["label"])).all()
