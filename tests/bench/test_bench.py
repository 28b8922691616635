"""The benchmark's own arithmetic and inputs: GEMM shapes, the FLOP-weighted bound, targets, the article folder,
the held-out table. Nothing here is timed or loads torch but the one slow smoke run of the whole benchmark."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, compose_train, corpus_sample, write_jsonl
from omegaconf.errors import ConfigKeyError

from claimstance.bench import figures, inputs
from claimstance.config import minilm_dir
from claimstance.inference.articles import segment


def test_gemm_shapes_come_from_the_model_config():
    config = SimpleNamespace(**json.loads((Path(minilm_dir()) / "config.json").read_text()))  # MiniLM-L6: 384, 1536, 6 layers
    gemms = figures.model_gemms(config, batch=64, tokens=24)
    assert [(g.m, g.k, g.n, g.count) for g in gemms] == [(1536, 384, 384, 24), (1536, 384, 1536, 6), (1536, 1536, 384, 6)]
    assert gemms[1].flops == 2 * 1536 * 384 * 1536 and gemms[1].shape == "1536x384x1536"


def test_weighted_rate_is_the_harmonic_mean_weighted_by_flops():
    gemms = [figures.Gemm("a", 10, 10, 10, count=3), figures.Gemm("b", 10, 10, 20, count=1)]  # 6,000 and 4,000 FLOPs
    assert figures.weighted_gflops(gemms, [100.0, 100.0]) == pytest.approx(100.0)
    # 6e3 FLOPs at 100 GFLOP/s and 4e3 at 25: 60 ns + 160 ns for 1e4 FLOPs
    assert figures.weighted_gflops(gemms, [100.0, 25.0]) == pytest.approx(1e4 / 220e-9 / 1e9)


def test_bound_in_sentences_per_second_uses_the_precision_rate():
    row = figures.share_of_bound(rate=300.0, tokens_per_item=25.0, flops=2e7, gflops=50.0)
    assert row["bound_per_s"] == pytest.approx(100.0) and row["share"] == pytest.approx(3.0)
    rows = {"inference onnx": {"bound": {"share": 0.9}}, "inference onnx-int8": {"bound": {"share": 1.4}}}
    assert figures.over_bound(rows) == ["inference onnx-int8"]


def test_best_seconds_warms_up_then_keeps_the_fastest_call():
    calls = []
    best = figures.best_seconds(lambda: calls.append(1), seconds=0.0, warmup=2, min_calls=3)
    assert len(calls) == 5 and 0 <= best < 0.01


def test_bf16_method_is_skipped_with_a_reason_only_where_the_cpu_lacks_it():
    assert figures.unavailable("torch-bf16", cpu_bf16=False) == figures.NO_BF16
    assert figures.unavailable("torch-bf16", cpu_bf16=True) is None and figures.unavailable("onnx", cpu_bf16=False) is None
    assert {figures.METHOD_PRECISION[m] for m in ("pipeline", "torch", "onnx")} == {"fp32"}
    assert figures.METHOD_PRECISION["onnx-int8"] == figures.METHOD_PRECISION["onnx-int8-static"] == "int8"
    assert figures.METHOD_PRECISION["torch-bf16"] == "bf16"


def test_share_of_bound_is_rate_over_what_the_matmul_rate_allows():
    result = figures.share_of_bound(rate=50.0, tokens_per_item=20.0, flops=1e7, gflops=100.0)
    assert result["bound_per_s"] == pytest.approx(500.0) and result["share"] == pytest.approx(0.1)


def test_targets_are_judged_in_their_own_direction():
    result = {
        "training": {"speedup": 6.0},
        "inference": {"methods": {"onnx": {"ratio": 3.9, "agreement": 1.0}, "onnx-int8": {"ratio": 8.0, "agreement": 0.99}}},
        "memory": {"peak_rss_mb": 2048.0},
        "wall_s": 300.0,
    }
    targets = {
        "training_speedup": 5,
        "onnx_speedup": 4,
        "onnx_agreement": 0.995,
        "int8_speedup": 7,
        "peak_rss_gb": 1.5,
        "wall_minutes": 10,
    }
    met = {name: row["met"] for name, row in figures.check_targets(result, targets).items()}
    assert met == {
        "training_speedup": True,
        "onnx_speedup": False,
        "onnx_agreement": True,
        "int8_speedup": True,
        "peak_rss_gb": False,
        "wall_minutes": True,
    }


def test_corpus_sentences_are_seeded_and_repeat_a_small_corpus(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", corpus_sample(2))
    texts = inputs.corpus_sentences(tmp_path, 20, seed=1)
    assert len(texts) == 20 and len(set(texts)) == 8 and texts == inputs.corpus_sentences(tmp_path, 20, seed=1)


@pytest.mark.parametrize(
    "ratio, seconds, met",
    [
        (4.2, 1.5, {"article_speedup": True, "startup_seconds": True}),
        (3.9, 1.51, {"article_speedup": False, "startup_seconds": False}),
    ],
)
def test_article_target_judges_backend_auto_and_startup_its_own(ratio, seconds, met):
    result = {"articles": {"methods": {"auto": {"ratio": ratio}, "onnx": {"ratio": 9.0}}}, "startup": {"seconds": seconds}}
    checks = figures.check_targets(result, {"article_speedup": 4.0, "startup_seconds": 1.5})
    assert {name: check["met"] for name, check in checks.items()} == met


def test_a_target_without_its_figure_is_not_met():
    checks = figures.check_targets({"articles": {"methods": {}}}, {"article_speedup": 4.0, "startup_seconds": 1.5})
    assert checks["article_speedup"] == {"value": None, "target": 4.0, "met": False} and not checks["startup_seconds"]["met"]


def test_documents_are_read_in_position_order_and_grouped_by_doc(tmp_path):
    rows = [
        {"doc": "b-01", "position": 2, "text": "Second of b."},
        {"doc": "a-01", "position": 1, "text": "Only a."},
        {"doc": "b-01", "position": 1, "text": "First of b."},
    ]
    write_jsonl(tmp_path / "docs" / "x.jsonl", rows)
    write_jsonl(tmp_path / "docs" / "loose.jsonl", [{"text": "One."}, {"text": "Two."}])  # no doc: one document per file
    assert inputs.corpus_documents(tmp_path / "docs") == [
        ("loose", ["One.", "Two."]),
        ("b-01", ["First of b.", "Second of b."]),
        ("a-01", ["Only a."]),
    ]


def test_article_folder_has_n_files_of_short_paragraphs_split_back_into_the_sentences(tmp_path):
    sentences = [f"Officials said on day {i} that the plan would go ahead." for i in range(7)]
    documents = [("energy-01", sentences), ("health-02", sentences[:2])]
    paths = inputs.build_articles(documents, tmp_path / "articles", 5)
    assert len(paths) == 5 == len({p.name for p in paths}) and paths[2].name == "00002-energy-01.txt"
    text = paths[0].read_text(encoding="utf-8")
    paragraphs = text.strip().split("\n\n")
    assert [len(re.findall(r"\.", p)) for p in paragraphs] == [2, 3, 1, 1] and "\n" not in "".join(paragraphs)
    assert [piece.text for piece in segment(text)] == sentences


def test_predict_config_is_predict_yaml_with_values_over_it_and_rejects_unknown_keys(tmp_path):
    cfg = inputs.predict_config(ROOT, model_dir="m", input="folder", html="r.html")
    assert cfg.model_dir == "m" and cfg.html == "r.html" and cfg.input_format == "auto" and "defaults" not in cfg
    with pytest.raises(ConfigKeyError, match="no_such_key"):
        inputs.predict_config(ROOT, no_such_key=1)


def test_held_out_table_shows_each_backends_quality_the_rule_and_autos_choice():
    row = {"sentences_per_s": 900.0, "macro_f1": 0.5, "agreement": 0.95, "agreement_answered": 0.99, "answered": 40}
    row["f1_delta_ci95"] = [-0.12, -0.08]
    quality = {
        "rule": {"f1_tolerance": 0.005, "min_agreement": 0.995, "answered_at_min_confidence": 0.9, "f1": "point figure"},
        "heldout_sentences": 200,
        "speed_sentences": 128,
        "backends": {
            "torch": {**row, "macro_f1": 0.6, "agreement_answered": 1.0, "qualified": True},
            "onnx-int8": {**row, "qualified": False},
        },
        "auto": "torch",
        "auto_here": "torch",
        "auto_reason": "fastest qualified backend measured on this CPU",
    }
    table = figures.held_out_table(quality)
    assert "200 sentences, 40 of them answered by fp32 at min_confidence=0.9; speed on 128" in table
    assert re.search(r"onnx-int8\s+900\.0\s+0\.5000\s+-0\.1000 \[-0\.120, -0\.080\]\s+95\.00%\s+99\.00%\s+no", table)
    assert "backend=auto: torch here (fastest qualified backend measured on this CPU)" in table


@pytest.mark.slow
def test_benchmark_smoke_run_measures_every_figure_for_the_backends_this_cpu_runs(tmp_path, small_corpus):
    """One run of the whole benchmark at smoke size: every section present, the backends those this CPU runs."""
    cfg = compose_train(
        [
            "model=tiny",
            "data=sentences",
            f"data.annotations={small_corpus}",
            "data.challenge=null",
            "train.samples=32",
            "inference.sentences=64",
            "latency.sentences=4",
            "memory.sentences=300",
            "articles.count=3",
            "startup.repeats=1",
            "matmul.seconds=0.01",
            "backends.speed_sentences=32",
            "backends.calibration_sentences=32",
            "backends.repeats=1",
        ],
        tmp_path,
        config_name="benchmark",
    )
    from claimstance.commands.benchmark import run
    from claimstance.inference.backends import runnable_backends

    run(cfg)
    saved = json.loads((tmp_path / "run" / "bench.json").read_text())
    model_dir = Path(saved["model"]["dir"])
    runnable = runnable_backends(model_dir)  # what the benchmark itself measures: bf16 only on a CPU that has it
    assert set(saved["inference"]["methods"]) == {"pipeline", *(b for b in cfg.inference.backends if b in runnable)}
    assert set(saved["inference"]["skipped"]) == set(cfg.inference.backends) - set(runnable)
    assert saved["inference"]["methods"]["onnx"]["agreement"] == 1.0
    assert saved["training"]["naive"]["precision"] == "fp32" and saved["training"]["naive"]["sampling"] == "random"
    assert saved["training"]["default"]["sampling"] == "group_by_length"

    quality = saved["test_split"]
    assert list(quality["backends"]) == runnable and quality["backends"]["torch"]["qualified"]
    assert quality["auto_here"] == quality["auto"] in runnable
    articles = saved["articles"]
    assert articles["files"] == 3 and set(articles["methods"]) == {"pipeline", "auto", "onnx"}
    assert articles["methods"]["auto"]["backend"] == quality["auto"] and articles["methods"]["auto"]["ratio"] > 0
    assert (tmp_path / "run" / "articles" / "auto.html").is_file()

    table = figures.format_table(saved)
    assert all(f"Predictor {name}" in table for name in saved["inference"]["methods"] if name != "pipeline")
    assert all(f"target {name}:" in table for name in saved["targets"]) and "backend=auto: " in table
    assert saved["startup"]["sentences"] >= 1 and saved["startup"]["torch_imported"] is False
    assert saved["memory"]["sentences"] == 300 and saved["memory"]["peak_rss_mb"] > 50
    peaks = saved["bound"]["precisions"]
    assert peaks["fp32"]["gflops"] > 0 and peaks["int8"]["gflops"] > 0 and len(peaks["fp32"]["shapes"]) == 3
    assert "MLAS" in peaks["int8"]["shapes"][0]["library"]
    assert saved["bound"]["training_mflops_per_token"] > 2 * saved["bound"]["forward_mflops_per_token"] > 0
