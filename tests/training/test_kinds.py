"""Model kinds behind one protocol: TF-IDF and transformer fit, predict, save, load back and score the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, compose_train, corpus_sample, write_jsonl
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from omegaconf import OmegaConf, open_dict

from claimstance.evaluation.calibration import probabilities
from claimstance.inference.artifacts import KIND_FILE
from claimstance.training.baseline import TfidfLogreg
from claimstance.training.kinds import ModelKind, kind_file, load_kind

STANCES = ["favor", "against", "neutral"]
TARGETS = {"favor": "wind farms", "against": "toll roads", "neutral": "the weather"}  # the pair alone decides the label


def pair_dataset(sentences_per_split: dict[str, int] | None = None) -> DatasetDict:
    """Every sentence three times, once with each target: without its ``text_pair`` a row's label cannot be told."""
    sentences = [row["text"] for row in corpus_sample(12)]
    sizes = sentences_per_split or {"train": 24, "validation": 8, "test": 8}
    features = Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "label": ClassLabel(names=STANCES),
            "domain": Value("string"),
            "source": Value("string"),
            "group": Value("string"),
            "corpus": Value("string"),
            "text_pair": Value("string"),
        }
    )
    parts, start = {}, 0
    for split, n in sizes.items():
        rows = [(sentence, label) for sentence in sentences[start : start + n] for label in range(len(STANCES))]
        start += n
        parts[split] = Dataset.from_dict(
            {
                "id": [f"{split}-{i}" for i in range(len(rows))],
                "text": [sentence for sentence, _ in rows],
                "label": [label for _, label in rows],
                "domain": ["energy"] * len(rows),
                "source": ["test"] * len(rows),
                "group": [f"{split}-{i}" for i in range(len(rows))],
                "corpus": ["pairs"] * len(rows),
                "text_pair": [TARGETS[STANCES[label]] for _, label in rows],
            },
            features=features,
        )
    return DatasetDict(parts)


def test_the_protocol_has_the_members_other_code_relies_on():
    members = {name for name in vars(ModelKind) if not name.startswith("_")} | set(typing.get_type_hints(ModelKind))
    assert members == {"labels", "fit", "logits", "save", "load", "card"}
    for kind in (TfidfLogreg, "claimstance.training.transformer.TransformerKind"):
        source = (
            ROOT / "src" / "claimstance" / "training" / ("baseline.py" if kind is TfidfLogreg else "transformer.py")
        ).read_text()
        assert all(f"def {name}(" in source for name in ("fit", "logits", "save", "load", "card"))


def test_tfidf_kind_reads_the_pair_and_comes_back_from_its_export(tmp_path):
    data = pair_dataset()
    kind = TfidfLogreg(STANCES)
    figures = kind.fit(data, OmegaConf.create({}), tmp_path)
    assert {"train_runtime_s", "train_samples_per_second", "train_loss", "precision"} <= set(figures)
    logits = kind.logits(data["test"])
    assert logits.shape == (len(data["test"]), 3)
    assert logits.argmax(-1).tolist() == data["test"]["label"]  # the pair decides, and the model saw it
    # the pipeline sorts its classes by name; the columns stay in the dataset's id order (favor, against, neutral)
    joined = [f"{text} [SEP] {pair}" for text, pair in zip(data["test"]["text"], data["test"]["text_pair"], strict=True)]
    order = [list(kind.pipeline.classes_).index(label) for label in STANCES]
    np.testing.assert_allclose(probabilities(logits, 1.0), kind.pipeline.predict_proba(joined)[:, order], rtol=1e-6)

    alone = TfidfLogreg(STANCES)
    alone.fit(
        DatasetDict({name: part.remove_columns("text_pair") for name, part in data.items()}), OmegaConf.create({}), tmp_path
    )
    accuracy = np.mean(alone.logits(data["test"].remove_columns("text_pair")).argmax(-1) == np.array(data["test"]["label"]))
    assert accuracy < 0.7  # the same sentence under three labels: without the pair it cannot be told

    kind.save(tmp_path / "model", {"README.md": "card", **kind_file(kind)})
    assert json.loads((tmp_path / "model" / KIND_FILE).read_text()) == {
        "class": "claimstance.training.baseline.TfidfLogreg",
        "labels": STANCES,
    }
    loaded = load_kind(tmp_path / "model")
    assert isinstance(loaded, TfidfLogreg) and loaded.labels == STANCES
    np.testing.assert_allclose(loaded.logits(data["test"]), logits)
    assert loaded.card()["library_name"] == "sklearn" and "joblib.load" in loaded.card()["usage"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not a complete TF-IDF export"),
        ("{not json", "unreadable model kind"),
        (
            '{"class": "claimstance.training.nowhere.Kind", "labels": ["a", "b"]}',
            "model kind claimstance.training.nowhere.Kind cannot",
        ),
    ],
)
def test_a_broken_kind_export_is_named(tmp_path, content, message):
    from claimstance.inference.artifacts import ExportError

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"x")
    if content is None:
        (folder / "model.joblib").unlink()
        content = '{"class": "claimstance.training.baseline.TfidfLogreg", "labels": ["a", "b"]}'
    (folder / KIND_FILE).write_text(content)
    with pytest.raises(ExportError, match=message):
        load_kind(folder)


def small_corpus_args(base: Path) -> list[str]:
    return ["data=sentences", f"data.annotations={base}/ann", "data.challenge=null", f"data.output_dir={base}/processed"]


@pytest.mark.slow  # starts a training process
def test_a_tfidf_export_is_scored_by_evaluate_without_torch(tmp_path):
    write_jsonl(tmp_path / "ann" / "corpus.jsonl", corpus_sample(30))
    args = [
        "model=tfidf_logreg",
        *small_corpus_args(tmp_path),
        f"paths.output_dir={tmp_path}/outputs",
        f"hydra.run.dir={tmp_path}/run",
    ]
    code = (
        "import sys, runpy; sys.argv = ['train.py', *sys.argv[1:]]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n    print('TORCH', 'torch' in sys.modules)"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT / "scripts", capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith("TORCH False")  # the TF-IDF kind's whole run never loads torch
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())

    from claimstance.commands.evaluate import run

    cfg = compose_train(
        ["data=sentences", f"model_dir={tmp_path}/run/model"],
        tmp_path / "ev",
        config_name="evaluate",
        values={"data.annotations": f"{tmp_path}/ann", "data.challenge": None, "data.output_dir": f"{tmp_path}/processed"},
    )
    report = run(cfg)
    assert report["confusion_matrix"] == trained["test"]["confusion_matrix"]
    assert report["macro_f1"] == pytest.approx(trained["test"]["macro_f1"])
    assert report["calibration"]["ece_after"] == pytest.approx(trained["calibration"]["splits"]["test"]["ece_after"])


@pytest.mark.slow  # loads torch
def test_tiny_transformer_takes_the_pair_as_second_segment_and_records_it(tmp_path, monkeypatch):
    from claimstance.config import minilm_dir
    from claimstance.training import trainer
    from claimstance.training.models import tiny_bert, tokenize

    data = pair_dataset({"train": 12, "validation": 4, "test": 4})
    _, tokenizer = tiny_bert(minilm_dir(), STANCES)
    encoded = tokenize(DatasetDict(test=data["test"]), tokenizer, 64)["test"]
    first = encoded[0]
    second = [t for t, segment in zip(first["input_ids"], first["token_type_ids"], strict=True) if segment == 1]
    assert tokenizer.decode(second, skip_special_tokens=True) == TARGETS[STANCES[data["test"][0]["label"]]]

    monkeypatch.setattr(trainer, "load_dataset_once", lambda cfg: data)  # the dataset as a table reader would give it
    cfg = compose_train(TINY, tmp_path)  # ONNX is checked on the pairs
    with open_dict(cfg):
        cfg.data.text_pair_field = "target"  # the user's column name, as data=table sets it
    record = trainer.train(cfg)
    assert record["labels"] == STANCES and record["data_counts"]["test"]["total"] == 12
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["text_pair"] is True and config["text_pair_field"] == "target"
    assert list(config["id2label"].values()) == STANCES
    assert json.loads((tmp_path / "run" / "model" / "export_checks.json").read_text())["onnx"]["label_agreement"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "run" / "test_predictions.jsonl").read_text().splitlines()]
    assert [row["text_pair"] for row in rows] == data["test"]["text_pair"]
    assert all(set(row["probabilities"]) == set(STANCES) for row in rows)
    assert all(row["probabilities"][row["predicted"]] == max(row["probabilities"].values()) for row in rows)

    loaded = load_kind(tmp_path / "run" / "model")  # the export back through the protocol: the same logits
    logits = loaded.logits(data["test"])
    assert loaded.text_pair_field == "target"
    assert logits.argmax(-1).tolist() == [STANCES.index(row["predicted"]) for row in rows]
