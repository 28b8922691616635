"""Speed features that must stay correct: precision choice, cached tokenization, the ONNX parity
check, length-sorted prediction and streaming. Nothing is timed (the benchmark's one smoke run is in
test_bench.py). Every test here loads torch, so the whole module is slow, and torch, transformers and the
modules that load them are imported inside the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from itertools import count, islice
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, corpus_sample, write_jsonl

from claimstance.config import minilm_dir
from claimstance.data.dataset import prepare_dataset
from claimstance.inference.artifacts import ONNX_FILE, ONNX_INT8_FILE, ExportError
from claimstance.inference.predictor import Predictor

pytestmark = pytest.mark.slow

LABELS = ["commitment", "caution", "request"]
TEXTS = [row["text"] for row in corpus_sample(8)] + ["Talks resume.", "No."]


@pytest.fixture(scope="module")
def tiny():
    """The randomly initialised model of configs/model/tiny.yaml and its tokenizer."""
    from transformers import set_seed

    from claimstance.training.models import tiny_bert

    set_seed(0)
    return tiny_bert(minilm_dir(), LABELS)


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory) -> Path:
    """The tiny model exported with ONNX and int8 ONNX, as train.py exports."""
    from claimstance.inference.export import export_model

    model, tokenizer = tiny
    target = tmp_path_factory.mktemp("export") / "model"
    export_model(model, tokenizer, target, files={}, sample_texts=TEXTS, onnx=True, int8=True)
    return target


# --- precision -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, cpu_bf16, expected",
    [("auto", False, "fp32"), ("bf16", False, "fp32"), ("fp16", False, "fp32"), ("auto", True, "bf16"), ("fp32", True, "fp32")],
)
def test_cpu_precision_falls_back_to_fp32_without_bf16(requested, cpu_bf16, expected):
    from claimstance.training import models as hf

    assert hf.resolve_precision(requested, use_cuda=False, cpu_bf16=cpu_bf16) == expected


def test_default_trainer_config_is_fast_and_fp32_where_bf16_is_missing(tmp_path, monkeypatch):
    import torch

    from claimstance.training import models as hf

    cfg = compose_train(["model=tiny"], tmp_path)
    assert cfg.trainer.precision == "auto" and cfg.trainer.args.train_sampling_strategy == "group_by_length"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hf, "cpu_supports_bf16", lambda: False)
    args, precision = hf.training_arguments(cfg, tmp_path / "checkpoints")
    assert precision == "fp32" and not args.bf16 and not args.fp16


# --- cached tokenization ---------------------------------------------------------------------


def cache_files(folder: Path) -> set[Path]:
    return set(folder.glob("*/cache-*.arrow"))


def test_tokenization_is_cached_until_tokenizer_or_annotations_change(tmp_path, small_corpus, caplog):
    from transformers import AutoTokenizer

    from claimstance.training import models as hf

    data = compose_train(["data=sentences", f"data.annotations={small_corpus}"], tmp_path).data
    prepare_dataset(data)
    folder = Path(data.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())

    first = hf.tokenize(prepare_dataset(data), tokenizer, 16)
    made = cache_files(folder)
    assert len(made) == 3 and first["train"].cache_files[0]["filename"] in {str(p) for p in made}
    assert set(first["train"].column_names) >= {"input_ids", "attention_mask", "length", "truncated"}
    assert max(first["train"]["length"]) <= 16
    stamps = {p: p.stat().st_mtime_ns for p in made}

    caplog.clear()
    again = hf.tokenize(prepare_dataset(data), AutoTokenizer.from_pretrained(minilm_dir()), 16)
    assert cache_files(folder) == made and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert list(again["train"]["input_ids"]) == list(first["train"]["input_ids"])
    truncated = sum(sum(part["truncated"]) for part in again.values())
    assert truncated > 0 and f"{truncated} sentence(s) longer than data.max_length=16" in caplog.text

    tokenizer.add_tokens(["brusselsxyz"])
    hf.tokenize(prepare_dataset(data), tokenizer, 16)
    assert len(cache_files(folder) - made) == 3

    changed = small_corpus / "a.jsonl"
    rows = [json.loads(line) for line in changed.read_text().splitlines()]
    rows[0]["text"] = "Brussels vowed to publish the rules next week."
    write_jsonl(changed, rows)
    prepare_dataset(data)  # rebuilds: the old folder and its caches go
    rebuilt = hf.tokenize(prepare_dataset(data), tokenizer, 16)
    assert not cache_files(folder) & made
    assert "Brussels vowed to publish the rules next week." in [t for part in rebuilt.values() for t in part["text"]]


# --- ONNX export and its parity check --------------------------------------------------------


def test_export_writes_dynamic_opset17_onnx_and_int8_with_figures(tiny_dir):
    import onnx

    graph = onnx.load(str(tiny_dir / ONNX_FILE))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for tensor in graph.graph.input:
        batch, sequence = tensor.type.tensor_type.shape.dim
        assert batch.dim_param and sequence.dim_param  # named, hence dynamic
    checks = json.loads((tiny_dir / "export_checks.json").read_text())
    assert checks["onnx"]["label_agreement"] == 1.0 and checks["onnx"]["max_prob_diff"] < 1e-4
    # int8 holds a quarter of the bytes (measured 1.1 MB against 4.1 MB) ...
    assert (tiny_dir / ONNX_INT8_FILE).stat().st_size < (tiny_dir / ONNX_FILE).stat().st_size / 2
    # ... and its recorded figures are those of the quantized graph against fp32, recomputed here. The label agreement
    # itself is no quality figure for this random model: its top two probabilities are closer than the int8
    # error, so labels flip. A trained model's int8 quality is judged on held-out documents (backends.json).
    fp32 = Predictor(tiny_dir, backend="onnx").predict_proba(TEXTS)
    int8 = Predictor(tiny_dir, backend="onnx-int8").predict_proba(TEXTS)
    assert checks["onnx_int8"]["label_agreement"] == pytest.approx(np.mean(fp32.argmax(-1) == int8.argmax(-1)))
    assert checks["onnx_int8"]["max_prob_diff"] == pytest.approx(np.abs(fp32 - int8).max(), abs=1e-6)
    assert 1e-6 < checks["onnx_int8"]["max_prob_diff"] < 1e-2  # really quantized, and still close to fp32


def test_export_fails_and_leaves_nothing_when_onnx_disagrees(tiny, tmp_path, monkeypatch):
    import torch

    from claimstance.inference import export

    real_export = export.export_onnx

    def export_other_weights(model, tokenizer, path):
        with torch.no_grad():
            model.classifier.bias += torch.tensor([4.0, 0.0, -4.0])
        real_export(model, tokenizer, path)

    monkeypatch.setattr(export, "export_onnx", export_other_weights)
    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        export.export_model(*tiny, tmp_path / "model", files={}, sample_texts=TEXTS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("drift, passes", [(5e-5, True), (2e-4, False)])
def test_parity_check_bounds_probability_drift_even_with_identical_labels(tiny_dir, monkeypatch, drift, passes):
    from claimstance.inference.export import verify_onnx

    original = Predictor.predict_proba

    def drifting(self, texts):
        probs = original(self, texts)
        return probs + drift if self.backend == "onnx" else probs  # same argmax, shifted probabilities

    monkeypatch.setattr(Predictor, "predict_proba", drifting)
    if passes:
        assert verify_onnx(tiny_dir, TEXTS, ONNX_FILE, tolerance=1e-4)["label_agreement"] == 1.0
    else:
        with pytest.raises(ExportError, match="max probability difference"):
            verify_onnx(tiny_dir, TEXTS, ONNX_FILE, tolerance=1e-4)


# --- Predictor -------------------------------------------------------------------------------


def test_auto_backend_is_onnx_when_exported_else_torch(tiny_dir, tmp_path):
    assert Predictor(tiny_dir).backend == "onnx"
    plain = shutil.copytree(tiny_dir, tmp_path / "plain", ignore=shutil.ignore_patterns("*.onnx"))
    assert Predictor(plain).backend == "torch"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_batches_are_sorted_by_tokens_padded_to_their_longest_and_answers_keep_input_order(tiny_dir, monkeypatch, backend):
    predictor = Predictor(tiny_dir, backend=backend, batch_size=4)
    batches = []
    original = Predictor._logits
    monkeypatch.setattr(Predictor, "_logits", lambda self, batch: batches.append(batch) or original(self, batch))
    probs = predictor.predict_proba(TEXTS)
    widths = [batch["input_ids"].shape[1] for batch in batches]
    assert all(batch["attention_mask"].sum(1).max() == width for batch, width in zip(batches, widths, strict=True))
    assert widths == sorted(widths) and sum(len(b["input_ids"]) for b in batches) == len(TEXTS)
    one_by_one = np.vstack([original(predictor, predictor.encode([t])) for t in TEXTS])
    np.testing.assert_allclose(probs, np.exp(one_by_one) / np.exp(one_by_one).sum(1, keepdims=True), atol=1e-5)


def test_predict_stream_takes_an_endless_input_one_chunk_at_a_time(tiny_dir, monkeypatch):
    predictor = Predictor(tiny_dir, backend="onnx")
    sizes = []
    original = Predictor.predict_proba
    monkeypatch.setattr(Predictor, "predict_proba", lambda self, texts: sizes.append(len(texts)) or original(self, texts))
    endless = (f"Officials said on day {i} that they would act." for i in count())
    records = list(islice(predictor.predict_stream(endless, chunk_size=16), 40))
    assert sizes == [16, 16, 16] and records[17]["text"] == "Officials said on day 17 that they would act."


# --- benchmark bookkeeping -------------------------------------------------------------------


def test_rss_probe_reports_the_child_alone_not_the_process_that_started_it():
    from claimstance.bench.processes import RSS_PROBE

    ballast = np.ones(400 * 2**20 // 8)  # 400 MB resident in this process
    child = [sys.executable, "-c", "x = bytearray(60 * 2**20)"]
    probe = subprocess.run([sys.executable, "-c", RSS_PROBE, *child], capture_output=True, text=True, check=True)
    peak_mb = int(probe.stdout.split()[-1]) / 1024
    assert 60 < peak_mb < 250 and ballast[-1] == 1.0
