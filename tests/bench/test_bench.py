"""The benchmark's own arithmetic and inputs: GEMM shapes, the FLOP-weighted bound, targets, the article folder.
Nothing here is timed or loads torch; two slow tests run the bf16 predictor and the whole benchmark at smoke size."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, compose_train, corpus_sample, write_jsonl
from hydra.utils import instantiate
from omegaconf import OmegaConf
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


def test_best_backend_is_the_fastest_that_keeps_the_agreement():
    ratios = {"torch": 1.4, "onnx": 2.0, "onnx-int8": 3.8}
    assert figures.best_backend(ratios, {"torch": 1.0, "onnx": 1.0, "onnx-int8": 0.996}, 0.995)["backend"] == "onnx-int8"
    picked = figures.best_backend(ratios, {"torch": 1.0, "onnx": 1.0, "onnx-int8": 0.976}, 0.995)
    assert picked == {"backend": "onnx", "ratio": 2.0, "agreement": 1.0, "min_agreement": 0.995}
    assert figures.best_backend(ratios, {"onnx": 0.9}, 0.995) is None


def test_bf16_method_is_skipped_with_a_reason_only_where_the_cpu_lacks_it():
    assert figures.unavailable("torch-bf16", cpu_bf16=False) == figures.NO_BF16
    assert figures.unavailable("torch-bf16", cpu_bf16=True) is None and figures.unavailable("onnx", cpu_bf16=False) is None
    assert {figures.METHOD_PRECISION[m] for m in ("pipeline", "torch", "onnx")} == {"fp32"}
    assert figures.METHOD_PRECISION["onnx-int8"] == "int8" and figures.METHOD_PRECISION["torch-bf16"] == "bf16"


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


@pytest.mark.slow  # loads torch
def test_bf16_predictor_runs_the_torch_model_under_bf16_autocast(tmp_path):
    from transformers import set_seed

    from claimstance.bench import measure as bench
    from claimstance.inference.export import export_model

    set_seed(0)
    model, tokenizer = instantiate(OmegaConf.load(CONFIGS / "model" / "tiny.yaml"), labels=["commitment", "caution", "none"])
    export_model(model, tokenizer, tmp_path / "model", files={}, sample_texts=[], onnx=False)
    texts = ["The ministry will double the grant next year.", "Talks resume."]
    fp32 = bench.make_predictor(tmp_path / "model", "torch").predict_logits(texts)
    bf16 = bench.make_predictor(tmp_path / "model", figures.BF16_BACKEND).predict_logits(texts)
    assert not np.array_equal(fp32, bf16) and np.allclose(fp32, bf16, atol=1e-3)


@pytest.mark.parametrize(
    "ratio, seconds, met",
    [
        (3.2, 1.5, {"article_speedup": True, "startup_seconds": True}),
        (2.9, 1.51, {"article_speedup": False, "startup_seconds": False}),
    ],
)
def test_article_and_startup_targets(ratio, seconds, met):
    result = {"articles": {"methods": {"onnx": {"ratio": ratio}}}, "startup": {"seconds": seconds}}
    checks = figures.check_targets(result, {"article_speedup": 3.0, "startup_seconds": 1.5})
    assert {name: check["met"] for name, check in checks.items()} == met


def test_a_target_without_its_figure_is_not_met():
    checks = figures.check_targets({"articles": {"methods": {}}}, {"article_speedup": 3.0, "startup_seconds": 1.5})
    assert checks["article_speedup"] == {"value": None, "target": 3.0, "met": False} and not checks["startup_seconds"]["met"]


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


@pytest.mark.slow
def test_benchmark_smoke_run_measures_articles_startup_and_each_precisions_bound(tmp_path, small_corpus):
    cfg = compose_train(
        [
            "model=tiny",
            "data=sentences",
            f"data.annotations={small_corpus}",
            "train.samples=32",
            "inference.sentences=64",
            "latency.sentences=4",
            "memory.sentences=300",
            "articles.count=3",
            "startup.repeats=1",
            "matmul.seconds=0.01",
        ],
        tmp_path,
        config_name="benchmark",
    )
    from claimstance.commands.benchmark import run

    run(cfg)
    saved = json.loads((tmp_path / "run" / "bench.json").read_text())
    table = figures.format_table(saved)
    assert all(f"Predictor {name}" in table for name in saved["inference"]["methods"] if name != "pipeline")
    assert all(f"target {name}:" in table for name in saved["targets"])
    articles = saved["articles"]
    assert articles["files"] == 3 and set(articles["methods"]) == {"pipeline", "onnx", "onnx-int8"}
    assert (tmp_path / "run" / "articles" / "onnx.html").is_file() and articles["methods"]["onnx"]["ratio"] > 0
    assert saved["startup"]["sentences"] >= 1 and saved["startup"]["torch_imported"] is False
    peaks = saved["bound"]["precisions"]
    assert peaks["fp32"]["gflops"] > 0 and peaks["int8"]["gflops"] > 0 and len(peaks["fp32"]["shapes"]) == 3
    assert "MLAS" in peaks["int8"]["shapes"][0]["library"]
    assert {"article_speedup", "startup_seconds"} <= set(saved["targets"])
    assert set(saved["test_split"]["agreement"]) == set(saved["inference"]["methods"]) - {"pipeline"}
