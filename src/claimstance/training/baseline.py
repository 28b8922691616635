"""The floor every run is compared with: TF-IDF n-grams + logistic regression (``model=tfidf_logreg``).

A model kind like the transformer (:mod:`claimstance.training.kinds`), so it goes through the same harness: the
same saved splits, the same scikit-learn report, plots, ``metrics.json``, export folder and trackers, and a run
folder of either kind reads the same. It never loads torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import joblib
import numpy as np
from datasets import Dataset, DatasetDict
from omegaconf import DictConfig
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

from claimstance.atomic import staged_folder
from claimstance.inference.artifacts import BASELINE_FILE, ExportError, read_kind

PAIR_SEPARATOR = " [SEP] "  # joins a sentence and its text pair into the one string the vectorizer reads


def texts_of(split: Dataset) -> list[str]:
    """The split's sentences, each joined with its ``text_pair`` where the dataset has one."""
    texts = list(split["text"])
    if "text_pair" not in split.column_names:
        return texts
    return [
        text if pair is None else f"{text}{PAIR_SEPARATOR}{pair}" for text, pair in zip(texts, split["text_pair"], strict=True)
    ]


class TfidfLogreg:
    """TF-IDF word 1..``ngram_max``-grams into a multinomial logistic regression, exported as ``model.joblib``.

    The pipeline is fitted on label names, so ``joblib.load(...).predict`` answers with them; :meth:`logits`
    puts its columns back in ``labels`` order.
    """

    def __init__(
        self,
        labels: Sequence[str],
        ngram_max: int = 2,
        min_df: int = 1,
        sublinear_tf: bool = True,
        C: float = 10.0,
        class_weight: str | None = "balanced",
        max_iter: int = 2000,
    ):
        self.labels = list(labels)
        self.ngram_max = ngram_max
        self.pipeline = Pipeline(
            [
                ("tfidf", TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=sublinear_tf)),
                ("logreg", LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)),
            ]
        )

    def fit(self, dataset: DatasetDict, cfg: DictConfig, run_dir: Path) -> dict:
        """Fit on train; the validation split plays no part (there is no checkpoint to pick)."""
        texts = texts_of(dataset["train"])
        names = [self.labels[i] for i in dataset["train"]["label"]]
        started = time.perf_counter()
        self.pipeline.fit(texts, names)
        runtime = time.perf_counter() - started
        return {
            "precision": "fp64 (scikit-learn)",
            "train_runtime_s": round(runtime, 1),
            "train_samples_per_second": len(texts) / max(runtime, 1e-9),
            "train_loss": float(log_loss(names, self.pipeline.predict_proba(texts), labels=self.pipeline.classes_)),
        }

    def logits(self, split: Dataset) -> np.ndarray:
        """Log-probabilities in ``labels`` order (a label absent from training gets probability ~0)."""
        fitted = list(self.pipeline.classes_)
        probabilities = self.pipeline.predict_proba(texts_of(split))
        ordered = np.full((len(probabilities), len(self.labels)), 1e-12)
        for column, label in enumerate(self.labels):
            if label in fitted:
                ordered[:, column] = probabilities[:, fitted.index(label)]
        return np.log(np.clip(ordered, 1e-12, None))

    def save(self, folder: Path, files: Mapping[str, str]) -> dict:
        """``model.joblib`` (the fitted Pipeline) and the extra files, renamed into place whole."""
        with staged_folder(Path(folder)) as staging:
            joblib.dump(self.pipeline, staging / BASELINE_FILE)
            for name, text in files.items():
                (staging / name).write_text(text, encoding="utf-8")
        return {}

    @classmethod
    def load(cls, folder: Path) -> TfidfLogreg:
        """The export's pipeline, with its labels from ``model_kind.json`` (joblib: load only folders you trust)."""
        spec = read_kind(folder)
        if spec is None or not (Path(folder) / BASELINE_FILE).is_file():
            raise ExportError(f"{folder}: not a complete TF-IDF export ({BASELINE_FILE} and model_kind.json); re-export it")
        kind = cls(spec["labels"])
        kind.pipeline = joblib.load(Path(folder) / BASELINE_FILE)
        kind.ngram_max = kind.pipeline.named_steps["tfidf"].ngram_range[1]
        return kind

    def card(self) -> dict:
        """Card lines: what the baseline is, and how to load it with joblib."""
        return {
            "kind": "tfidf_logreg",
            "title": "TF-IDF + logistic regression baseline",
            "note": "This is the scikit-learn floor the transformer is compared with, trained on the same splits.",
            "library_name": "sklearn",
            "base_model": f"TF-IDF word 1..{self.ngram_max}-grams + logistic regression (scikit-learn)",
            "usage": USAGE.replace("BASELINE_FILE", BASELINE_FILE),
        }


USAGE = """```python
import joblib  # a pickle: load only files you trust
joblib.load("PATH/TO/THIS/FOLDER/BASELINE_FILE").predict(["The ministry said it will double the grant next year."])
```"""
