"""What the benchmark computes from its timings: the GEMM bound and each method's share of it, the targets
and the printed table.

Pure functions and plain timing helpers, no torch: the arithmetic is tested on hand-made figures in the fast
test tier, and ``format_table`` re-reads any ``bench.json``. The measurements themselves are in ``measure.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from claimstance.inference.backends import BF16_BACKEND
from claimstance.tables import text_table

if TYPE_CHECKING:
    from transformers import PretrainedConfig

NO_BF16 = "not supported on this CPU (no avx512_bf16 or AMX)"
METHOD_PRECISION = {
    "pipeline": "fp32",
    "auto": "fp32",
    "torch": "fp32",
    "onnx": "fp32",
    BF16_BACKEND: "bf16",
    "onnx-int8": "int8",
    "onnx-int8-static": "int8",
}


def best_rate(fn: Callable[[], object], items: int, repeats: int) -> tuple[float, object]:
    """Items per second of the fastest of ``repeats`` calls (the least disturbed), and its result."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return items / best, result


def best_seconds(fn: Callable[[], object], seconds: float, warmup: int = 2, min_calls: int = 3) -> float:
    """Seconds of the fastest call after ``warmup`` untimed ones, calling until ``seconds`` have passed (``min_calls`` at least).

    The fastest call is the one the machine's other load disturbed least.
    """
    for _ in range(warmup):
        fn()
    best, spent, calls = float("inf"), 0.0, 0
    while spent < seconds or calls < min_calls:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


def latency_ms(fn: Callable[[str], object], texts: Iterable[str]) -> dict[str, float]:
    """p50/p95 milliseconds of one call per sentence."""
    times = []
    for text in texts:
        start = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - start) * 1000)
    p50, p95 = np.percentile(times, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Share of sentences given the same label."""
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def unavailable(backend: str, cpu_bf16: bool) -> str | None:
    """Why ``backend`` cannot be measured on this machine, or None: bf16 without native instructions is emulated, not measured."""
    return NO_BF16 if backend == BF16_BACKEND and not cpu_bf16 else None


@dataclass(frozen=True)
class Gemm:
    """One kind of dense-layer matrix multiply in a forward pass, (m x k) by (k x n), done ``count`` times."""

    name: str
    m: int
    k: int
    n: int
    count: int

    @property
    def flops(self) -> float:
        """Multiply-adds counted as two operations, the same for float and integer kernels."""
        return 2.0 * self.m * self.k * self.n

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.k}x{self.n}"


def model_gemms(config: PretrainedConfig, batch: int, tokens: int) -> list[Gemm]:
    """The dense layers' GEMMs of one forward pass over ``batch`` sentences of ``tokens`` tokens (a BERT-like encoder)."""
    m, hidden, inner, layers = batch * tokens, config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return [
        Gemm("attention q/k/v/out", m, hidden, hidden, 4 * layers),
        Gemm("feed-forward in", m, hidden, inner, layers),
        Gemm("feed-forward out", m, inner, hidden, layers),
    ]


def weighted_gflops(gemms: Sequence[Gemm], gflops: Sequence[float]) -> float:
    """The rate of one forward's GEMMs run at these per-shape rates: their FLOPs over their summed time (harmonic mean)."""
    total = sum(g.count * g.flops for g in gemms)
    seconds = sum(g.count * g.flops / (rate * 1e9) for g, rate in zip(gemms, gflops, strict=True))
    return total / seconds / 1e9


def share_of_bound(rate: float, tokens_per_item: float, flops: float, gflops: float) -> dict:
    """The rate the GEMM ceiling allows for items of this size, and the share of it reached."""
    bound = gflops * 1e9 / (tokens_per_item * flops)
    return {"bound_per_s": bound, "share": rate / bound}


def over_bound(rows: Mapping[str, Mapping]) -> list[str]:
    """Methods past 100% of their precision's bound: there the bound is wrong, and the table must say so."""
    return [name for name, row in rows.items() if row["bound"]["share"] > 1]


def dig(mapping: Mapping, *keys: str) -> object:
    """``mapping[k1][k2]...``, or None where a level is missing (a method skipped or not measured)."""
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def check_targets(result: Mapping, targets: Mapping) -> dict:
    """Each acceptance figure named in ``targets`` with its target and whether it was met (a missing figure is not)."""
    peak_mb, wall_s = dig(result, "memory", "peak_rss_mb"), dig(result, "wall_s")
    figures = {
        "training_speedup": (dig(result, "training", "speedup"), "min"),
        "onnx_speedup": (dig(result, "inference", "methods", "onnx", "ratio"), "min"),
        "onnx_agreement": (dig(result, "inference", "methods", "onnx", "agreement"), "min"),
        "int8_speedup": (dig(result, "inference", "methods", "onnx-int8", "ratio"), "min"),
        "article_speedup": (dig(result, "articles", "methods", "auto", "ratio"), "min"),
        "startup_seconds": (dig(result, "startup", "seconds"), "max"),
        "peak_rss_gb": (None if peak_mb is None else peak_mb / 1024, "max"),
        "wall_minutes": (None if wall_s is None else wall_s / 60, "max"),
    }
    return {
        name: {
            "value": value,
            "target": targets[name],
            "met": value is not None and (value >= targets[name] if kind == "min" else value <= targets[name]),
        }
        for name, (value, kind) in figures.items()
        if name in targets
    }


def bound_lines(bound: Mapping) -> list[str]:
    """Each precision's peak: the library and GFLOP/s at every shape, the other libraries' rates, the sustained rate."""
    lines = [
        f"bound: fastest GEMM kernel per precision at the model's shapes (M x K x N, M = {bound['batch']} sentences x "
        f"{bound['tokens']} tokens), FLOP-weighted over one forward"
    ]
    for precision, peak in bound["precisions"].items():
        if "skipped" in peak:
            lines.append(f"  {precision}: {peak['skipped']}")
            continue
        lines.append(f"  {precision}: {peak['gflops']:.1f} GFLOP/s")
        for shape in peak["shapes"]:
            others = ", ".join(f"{name} {rate:.1f}" for name, rate in shape["by_library"].items() if name != shape["library"])
            lines.append(
                f"    {shape['shape']} x{shape['count']} ({shape['name']}): {shape['library']} {shape['gflops']:.1f} GFLOP/s"
                + (f"; {others}" if others else "")
            )
    lines.append(
        f"model: {bound['forward_mflops_per_token']:.2f} MFLOP/token forward ({bound['gemm_share_of_forward']:.0%} in these "
        f"GEMMs), {bound['training_mflops_per_token']:.2f} training; {bound['tokens_per_sentence']:.1f} tokens/sentence"
    )
    if bound["exceeded"]:
        lines.append(
            f"BOUND EXCEEDED by {', '.join(bound['exceeded'])}: the bound is wrong for them. It prices every FLOP torch's "
            "counter sees (dense layers, attention matmuls) at the dense-layer GEMM rate; a method that does some of that work "
            "on a faster kernel than those timed here, or skips part of it, passes it."
        )
    return lines


def bound_cell(row: Mapping) -> str:
    """Share of the bound with the precision whose bound it is, e.g. ``91% fp32``."""
    return f"{row['bound']['share']:.0%} {row['bound']['precision']}"


def article_backend(row: Mapping) -> str:
    """`` (= onnx-int8)`` for the auto row of the article table: the backend it ran."""
    return f" (= {row['backend']})" if "backend" in row else ""


def method_tables(result: Mapping) -> list[str]:
    """One table per kind of work: training, inference, single-sentence latency, article tagging."""
    training, inference_, articles = result["training"], result["inference"], result["articles"]
    training_rows = [
        (
            f"{name}: {row['padding']}, {row['precision']}, {row['sampling']}",
            f"{row['samples_per_s']:.1f}",
            f"{row['ratio']:.1f}x",
            f"{row['train_loss']:.3f}",
            bound_cell(row),
        )
        for name, row in ((name, training[name]) for name in ("naive", "default"))
    ]
    inference_rows = [
        (
            f"transformers.pipeline(batch_size={row['batch_size']})" if name == "pipeline" else f"Predictor {name}",
            f"{row['sentences_per_s']:.1f}",
            f"{row['ratio']:.1f}x",
            f"{row['agreement']:.1%}",
            bound_cell(row),
        )
        for name, row in inference_["methods"].items()
    ]
    latency_rows = [(name, f"{row['p50']:.1f}", f"{row['p95']:.1f}") for name, row in inference_["latency_ms"].items()]
    article_rows = [
        (
            f"pipeline(batch_size={row['batch_size']}), pre-split"
            if name == "pipeline"
            else f"predict.run {name}{article_backend(row)}: split, JSONL + HTML",
            f"{row['sentences_per_s']:.1f}",
            f"{row['ratio']:.1f}x",
            f"{row['seconds']:.1f}",
        )
        for name, row in articles["methods"].items()
    ]
    return [
        text_table(
            [f"training: {training['sentences']} sentences, 1 epoch", "samples/s", "ratio", "train loss", "of bound"],
            training_rows,
        ),
        text_table(
            [f"inference: {inference_['sentences']} sentences", "sentences/s", "ratio", "agreement", "of bound"], inference_rows
        ),
        text_table(["single-sentence latency", "p50 ms", "p95 ms"], latency_rows),
        text_table(
            [f"articles: {articles['files']} files, {articles['sentences']} sentences", "sentences/s", "ratio", "seconds"],
            article_rows,
        ),
    ]


def interval(bounds: Sequence[float] | None) -> str:
    """``[-0.012, +0.004]``, or nothing for figures recorded without it."""
    return "" if bounds is None else f"[{bounds[0]:+.3f}, {bounds[1]:+.3f}]"


def held_out_table(quality: Mapping) -> str:
    """Each backend's held-out figures from the export's ``backends.json``, the rule, and auto's choice here."""
    rule, reference = quality["rule"], quality["backends"]["torch"]["macro_f1"]
    answered = next(iter(quality["backends"].values()))["answered"]
    threshold = rule["answered_at_min_confidence"]
    rows = [
        (
            name,
            f"{row['sentences_per_s']:.1f}",
            f"{row['macro_f1']:.4f}",
            f"{row['macro_f1'] - reference:+.4f} {interval(row.get('f1_delta_ci95'))}",
            f"{row['agreement']:.2%}",
            f"{row['agreement_answered']:.2%}",
            "yes" if row["qualified"] else "no",
        )
        for name, row in quality["backends"].items()
    ]
    answered_at = "no min_confidence in the export: all" if threshold is None else f"min_confidence={threshold:g}"
    columns = ["held-out backend", "sentences/s", "macro-F1", "vs fp32 [bootstrap 95%]", "agreement", "on answered", "qualified"]
    lines = [
        f"held-out documents: {quality['heldout_sentences']} sentences, {answered} of them answered by fp32 at {answered_at}; "
        f"speed on {quality['speed_sentences']} of them",
        text_table(columns, rows),
        f"qualified: macro-F1 at most {rule['f1_tolerance']:g} below PyTorch fp32's ({rule['f1']}) and fp32's label on "
        f">= {rule['min_agreement']:.1%} of the sentences fp32 answers",
        f"backend=auto: {quality['auto_here']} here ({quality['auto_reason']}); recorded choice: {quality['auto']}",
    ]
    return "\n".join(lines)


def format_table(result: Mapping) -> str:
    """The figures as plain text: the tables, then one line per other figure (the README's Performance section quotes it)."""
    memory, bound, start_up = result["memory"], result["bound"], result["startup"]
    lines = [
        *(f"Predictor {name}: skipped, {reason}" for name, reason in result["inference"]["skipped"].items()),
        f"start-up: scripts/predict.py, {start_up['sentences']}-sentence article, backend=onnx: {start_up['seconds']:.2f} s "
        f"(best of {len(start_up['runs_s'])}); torch imported: {'yes' if start_up['torch_imported'] else 'no'}",
        f"scripts/predict.py on {memory['sentences']:,} lines ({memory['backend']}): peak RSS {memory['peak_rss_mb']:.0f} MB, "
        f"{memory['sentences_per_s']:.0f} sentences/s start-up included",
        *bound_lines(bound),
        f"model measured: {result['model']['dir']} ({result['model']['source']})",
        f"machine: {result['machine']['cpu']}, {result['machine']['threads']} thread(s); wall {result['wall_s'] / 60:.1f} min",
    ]
    for name, check in result["targets"].items():
        value = "n/a" if check["value"] is None else f"{check['value']:.3g}"
        lines.append(f"target {name}: {value} (target {check['target']:g}) {'met' if check['met'] else 'NOT MET'}")
    return "\n\n".join([*method_tables(result), held_out_table(result["test_split"])]) + "\n\n" + "\n".join(lines)
