"""backend=auto: the rule a backend must pass, the choice per CPU, the recorded figures, and text pairs in Predictor.

The rule and the choice are pure functions on hand-made figures and fake export folders (fast tier); the slow
tests export a tiny model, measure its backends and predict sentence pairs on ONNX and PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import corpus_sample

from claimstance.config import minilm_dir
from claimstance.errors import UserError
from claimstance.inference import backends as rule
from claimstance.inference.artifacts import CALIBRATION_FILE, ONNX_FILE, ONNX_INT8_FILE, ExportError

LABELS = ["commitment", "caution", "request"]
TEXTS = [row["text"] for row in corpus_sample(8)] + ["Talks resume.", "No."]
AMD = {"cpu": "AMD EPYC", "flags": ["avx2"]}
XEON = {"cpu": "Intel Xeon Platinum 8480+", "flags": ["amx_bf16", "amx_int8", "avx2", "avx512_bf16", "avx512f"]}


def test_cpu_identity_reads_the_name_and_only_the_flags_kernels_use():
    cpuinfo = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu sse avx2 avx512f amx_bf16 vmx\n\nprocessor\t: 1\n"
    identity = rule.cpu_identity(cpuinfo)
    assert identity == {"cpu": "Intel Xeon", "flags": ["amx_bf16", "avx2", "avx512f"]}
    assert rule.cpu_has_bf16(identity) and not rule.cpu_has_bf16(AMD)


def test_macro_f1_matches_scikit_learn_on_labels_present():
    from sklearn.metrics import f1_score

    gold, predicted = [0, 0, 1, 1, 2, 2, 2, 3], [0, 1, 1, 1, 2, 0, 2, 2]
    assert rule.macro_f1(gold, predicted, 4) == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert rule.macro_f1([0, 0], [0, 0], 4) == 1.0  # labels absent from both sides do not count as zeros


def test_agreement_on_answered_counts_only_sentences_fp32_is_sure_of():
    reference = np.array([[0.95, 0.05], [0.97, 0.03], [0.55, 0.45], [0.40, 0.60]])
    candidate = np.array([[0.90, 0.10], [0.96, 0.04], [0.45, 0.55], [0.60, 0.40]])  # flips the two unsure ones
    row = rule.quality(reference, candidate, gold=[0, 0, 1, 1], threshold=0.9)
    assert row["agreement"] == 0.5 and row["agreement_answered"] == 1.0 and row["answered"] == 2
    assert rule.quality(reference, candidate, [0, 0, 1, 1], threshold=None)["agreement_answered"] == 0.5


def test_bootstrap_interval_of_the_f1_difference_is_zero_for_identical_labels_and_brackets_a_real_change():
    gold = [0, 1, 2, 3] * 25
    assert rule.f1_delta_interval(gold, gold, gold, 4, resamples=200) == [0.0, 0.0]
    worse = [0 if i % 10 == 0 else g for i, g in enumerate(gold)]  # 10 sentences changed to label 0
    point = rule.macro_f1(gold, worse, 4) - 1.0
    low, high = rule.f1_delta_interval(gold, gold, worse, 4, resamples=200)
    assert low < point < high < 0


@pytest.mark.parametrize(
    "f1, answered, expected",
    [(0.795, 0.995, True), (0.7949, 1.0, False), (0.9, 0.994, False), (0.85, 1.0, True)],
)
def test_a_backend_qualifies_on_both_held_out_macro_f1_and_answered_agreement(f1, answered, expected):
    assert rule.qualifies({"macro_f1": f1, "agreement_answered": answered}, reference_f1=0.8) is expected


def fake_export(folder: Path, files: list[str], record: dict | None) -> Path:
    """An export folder holding only what the choice looks at: which ONNX files exist and backends.json."""
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_bytes(b"")
    if record is not None:
        (folder / rule.BACKENDS_FILE).write_text(json.dumps(record))
    return folder


def recorded(machine: dict, **qualified_speed: tuple[bool, float]) -> dict:
    rows = {name.replace("_", "-"): {"qualified": q, "sentences_per_s": s} for name, (q, s) in qualified_speed.items()}
    return {"machine": machine, "backends": rows, "auto": rule.fastest(rows, list(rows))}


def test_auto_runs_the_recorded_choice_on_the_cpu_it_was_measured_on(tmp_path):
    record = recorded(AMD, torch=(True, 200.0), onnx=(True, 450.0), onnx_int8=(False, 900.0), onnx_int8_static=(True, 700.0))
    folder = fake_export(tmp_path / "m", [ONNX_FILE, ONNX_INT8_FILE, rule.ONNX_INT8_STATIC_FILE], record)
    assert record["auto"] == "onnx-int8-static"  # the faster dynamic int8 failed the rule
    backend, reason = rule.choose_backend(folder, AMD)
    assert backend == "onnx-int8-static" and "measured on this CPU" in reason


def test_on_another_cpu_auto_runs_the_fastest_qualified_backend_that_runs_there(tmp_path):
    record = recorded(XEON, torch=(True, 300.0), torch_bf16=(True, 1200.0), onnx=(True, 500.0), onnx_int8=(True, 1000.0))
    folder = fake_export(tmp_path / "m", [ONNX_FILE, ONNX_INT8_FILE], record)
    assert rule.choose_backend(folder, XEON)[0] == "torch-bf16"
    backend, reason = rule.choose_backend(folder, AMD)  # no bf16 here
    assert backend == "onnx-int8" and "another CPU (Intel Xeon" in reason
    same_name_other_flags = {"cpu": XEON["cpu"], "flags": ["avx2"]}
    assert rule.choose_backend(folder, same_name_other_flags)[0] == "onnx-int8"


def test_auto_falls_back_to_onnx_fp32_then_torch(tmp_path):
    nothing_qualified = recorded(AMD, torch=(False, 200.0), onnx_int8=(False, 900.0))
    assert rule.choose_backend(fake_export(tmp_path / "a", [ONNX_FILE, ONNX_INT8_FILE], nothing_qualified), AMD)[0] == "onnx"
    assert rule.choose_backend(fake_export(tmp_path / "b", [ONNX_FILE], None), AMD) == ("onnx", "no backends.json in the export")
    assert rule.choose_backend(fake_export(tmp_path / "c", [], None), AMD)[0] == "torch"


def test_a_broken_backends_file_is_named_with_its_problem(tmp_path):
    folder = fake_export(tmp_path / "m", [ONNX_FILE], None)
    (folder / rule.BACKENDS_FILE).write_text("{not json")
    with pytest.raises(ExportError, match=r"backends\.json: not valid JSON"):
        rule.choose_backend(folder, AMD)
    (folder / rule.BACKENDS_FILE).write_text('{"backends": {}}')
    with pytest.raises(ExportError, match=r"backends\.json: 'backends' and 'auto' are missing"):
        rule.choose_backend(folder, AMD)


def test_answer_threshold_is_the_calibrations_min_confidence(tmp_path):
    assert rule.answer_threshold(tmp_path) is None
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"temperature": 1.2, "min_confidence": {"threshold": 0.8964}}))
    assert rule.answer_threshold(tmp_path) == 0.8964
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"temperature": 1.2, "min_confidence": {"threshold": None}}))
    assert rule.answer_threshold(tmp_path) is None


# --- slow: a tiny export, measured --------------------------------------------------------------


def tiny_model(text_pair: bool = False):
    """configs/model/tiny.yaml's randomly initialised BERT (MiniLM tokenizer); with ``text_pair``, marked as trained on pairs."""
    from transformers import set_seed

    from claimstance.training.models import tiny_bert

    set_seed(0)
    model, tokenizer = tiny_bert(minilm_dir(), LABELS)
    if text_pair:
        model.config.text_pair, model.config.text_pair_field = True, "target"
    return model, tokenizer


@pytest.fixture(scope="module")
def measured_export(tmp_path_factory) -> Path:
    """The tiny model exported with held-out sentences: int8 models and backends.json made in the export."""
    from claimstance.inference.export import export_model

    target = tmp_path_factory.mktemp("export") / "model"
    calibration = json.dumps({"temperature": 1.0, "min_confidence": {"threshold": 0.34}})
    gold = [i % len(LABELS) for i in range(len(TEXTS))]
    export_model(
        *tiny_model(),
        target,
        files={CALIBRATION_FILE: calibration},
        sample_texts=TEXTS,
        heldout=(TEXTS, gold),
        calibration_texts=TEXTS,
    )
    return target


@pytest.mark.slow
def test_export_records_every_backend_this_cpu_runs_and_auto_runs_the_recorded_choice(measured_export, caplog):
    import onnx

    from claimstance.inference.predictor import Predictor

    record = json.loads((measured_export / rule.BACKENDS_FILE).read_text())
    assert list(record["backends"]) == rule.runnable_backends(measured_export)
    assert {"torch", "onnx", "onnx-int8", "onnx-int8-static"} <= set(record["backends"])
    assert record["machine"]["cpu"] == rule.cpu_identity()["cpu"] and record["rule"]["answered_at_min_confidence"] == 0.34
    reference = record["backends"]["torch"]
    assert reference["agreement"] == 1.0 and reference["qualified"] and record["heldout_sentences"] == len(TEXTS)
    assert record["backends"]["onnx"]["max_prob_diff"] < 1e-4 and record["backends"]["onnx"]["qualified"]
    for row in record["backends"].values():
        assert row["sentences_per_s"] > 0 and row["qualified"] == rule.qualifies(row, reference["macro_f1"])
    assert record["auto"] == rule.fastest(record["backends"], list(record["backends"]))
    ops = {node.op_type for node in onnx.load(str(measured_export / rule.ONNX_INT8_STATIC_FILE)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: static ranges baked into the graph
    caplog.set_level("INFO", logger="claimstance.inference.predictor")
    assert Predictor(measured_export).backend == record["auto"]
    assert f"backend=auto: {record['auto']} (fastest qualified backend measured on this CPU" in caplog.text


@pytest.mark.slow
def test_torch_bf16_backend_runs_under_autocast(measured_export):
    from claimstance.inference.predictor import Predictor

    fp32 = Predictor(measured_export, backend="torch").predict_logits(TEXTS)
    bf16 = Predictor(measured_export, backend="torch-bf16").predict_logits(TEXTS)
    assert not np.array_equal(fp32, bf16) and np.allclose(fp32, bf16, atol=1e-2)


# --- slow: text pairs ----------------------------------------------------------------------------

PAIRS = [
    {"text": "The ministry will double the grant next year.", "text_pair": "education funding"},
    {"text": "Officials warned the plan may be delayed.", "text_pair": "rail expansion"},
    {"text": "Please send your comments by Friday.", "text_pair": "public consultation on the new tram line"},
]


@pytest.fixture(scope="module")
def pair_export(tmp_path_factory) -> Path:
    """A tiny model whose config says it was trained on text pairs, exported with ONNX."""
    from claimstance.inference.export import export_model

    target = tmp_path_factory.mktemp("pairs") / "model"
    export_model(*tiny_model(text_pair=True), target, files={}, sample_texts=PAIRS)  # ONNX checked on pairs
    return target


@pytest.mark.slow
def test_pairs_encode_as_the_tokenizers_second_segment_like_auto_tokenizer(pair_export):
    from transformers import AutoTokenizer

    from claimstance.inference.predictor import Predictor

    predictor = Predictor(pair_export, backend="onnx")
    ours = predictor.encode(PAIRS)
    theirs = AutoTokenizer.from_pretrained(str(pair_export))(
        [p["text"] for p in PAIRS], [p["text_pair"] for p in PAIRS], padding=True, return_tensors="np"
    )
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(ours[name], theirs[name])
    assert ours["token_type_ids"].max() == 1  # the pair really is the second segment


@pytest.mark.slow
def test_pairs_get_the_same_labels_on_onnx_and_torch_and_keep_their_pair(pair_export):
    from claimstance.inference.predictor import Predictor

    onnx_records = Predictor(pair_export, backend="onnx").predict(PAIRS)
    torch_proba = Predictor(pair_export, backend="torch").predict_proba(PAIRS)
    assert [r["label"] for r in onnx_records] == [LABELS[i] for i in torch_proba.argmax(-1)]
    assert [(r["text"], r["text_pair"]) for r in onnx_records] == [(p["text"], p["text_pair"]) for p in PAIRS]
    swapped = [{"text": p["text_pair"], "text_pair": p["text"]} for p in PAIRS]  # the order of the segments matters
    assert not np.allclose(Predictor(pair_export, backend="onnx").predict_logits(swapped), torch_proba)


@pytest.mark.slow
def test_a_pair_model_refuses_plain_strings_and_a_sentence_model_refuses_pairs(pair_export, measured_export):
    from claimstance.inference.predictor import Predictor

    with pytest.raises(UserError, match=r"input 1: this model was trained on text pairs, so each input needs a text_pair"):
        Predictor(pair_export, backend="onnx").predict([PAIRS[0], "A plain sentence."])
    with pytest.raises(UserError, match=r"input 0: field 'text_pair' is missing or not a string"):
        Predictor(pair_export, backend="onnx").predict_proba([{"text": "No target here."}])
    single = Predictor(measured_export, backend="onnx")
    with pytest.raises(UserError, match=r"input 0: this model was trained on single sentences; drop text_pair"):
        single.predict([PAIRS[0]])
    assert single.predict([{"text": TEXTS[0]}])[0]["label"] == single.predict([TEXTS[0]])[0]["label"]


def test_a_backend_whose_labels_change_with_the_batch_does_not_qualify():
    row = {"macro_f1": 0.8, "agreement_answered": 1.0}
    assert rule.qualifies({**row, "batch_agreement": 1.0}, reference_f1=0.8)
    assert not rule.qualifies({**row, "batch_agreement": 0.968}, reference_f1=0.8)  # dynamic int8 on the default export
