"""Speed of training and inference: the naive Hugging Face setup against claimstance's defaults.

``run(cfg)`` is the whole of ``scripts/benchmark.py``. Everything is measured in one process on
the same sentences and the same model, so the ratios hold even where absolute figures drift with
the machine's load; the sustained matrix-multiply rate turns them into a share of what the CPU
could do at best.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import cycle, islice
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import transformers
from datasets import Dataset, DatasetDict
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    default_data_collator,
    pipeline,
    set_seed,
)

from claimstance.annotations import annotation_files
from claimstance.config import exits_cleanly
from claimstance.dataset import prepare_dataset
from claimstance.export import export_model
from claimstance.predict import Predictor, default_threads, read_inputs
from claimstance.train import cpu_supports_bf16, tokenize, training_arguments

log = logging.getLogger(__name__)


def cpu_name() -> str:
    """The processor's marketing name (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(threads: int) -> dict:
    """What the figures were measured on: they mean little without it."""
    return {
        "cpu": cpu_name(),
        "cores_available": default_threads(),
        "threads": threads,
        "cpu_bf16": cpu_supports_bf16(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def corpus_sentences(annotations: str | Path, count: int, seed: int) -> list[str]:
    """``count`` annotated sentences in a seeded random order (the corpus repeated if it is smaller)."""
    texts = [text for path in annotation_files(annotations) for text in read_inputs(path, "jsonl")]
    random.Random(seed).shuffle(texts)
    return list(islice(cycle(texts), count))


def token_lengths(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Tokens per sentence, special tokens included: the work a model does on each."""
    return np.array(tokenizer(list(texts), truncation=True, max_length=max_length, return_length=True)["length"])


def naive_encode(split: Dataset, tokenizer: PreTrainedTokenizerBase, padding_length: int) -> Dataset:
    """Every sentence padded to ``padding_length`` up front, as most fine-tuning examples do."""

    def encode(batch: dict) -> dict:
        return tokenizer(batch["text"], padding="max_length", truncation=True, max_length=padding_length)

    return split.map(encode, batched=True, remove_columns=[c for c in split.column_names if c != "label"])


def train_one(
    cfg: DictConfig, split: Dataset, labels: list[str], naive: bool
) -> tuple[dict, PreTrainedModel, PreTrainedTokenizerBase]:
    """One training run from the seeded initial weights; its throughput, loss and precision.

    ``naive``: ``cfg.naive`` merged over the trainer config and padding to a fixed length; else the
    project's own trainer config and tokenization (dynamic padding, length-grouped batches).
    """
    name = "naive" if naive else "default"
    run_cfg = OmegaConf.merge(cfg, {"trainer": cfg.naive.trainer}) if naive else cfg
    args, precision = training_arguments(run_cfg, Path(cfg.paths.run_dir) / f"train_{name}")
    set_seed(int(cfg.seed))
    model, tokenizer = instantiate(cfg.model, labels=labels)
    if naive:
        data, collator = naive_encode(split, tokenizer, int(cfg.naive.padding_length)), default_data_collator
    else:
        data = tokenize(DatasetDict(train=split), tokenizer, int(cfg.data.max_length))["train"]
        collator = DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, data_collator=collator)
    log.info("Training the %s setup on %d sentences (%s)", name, len(data), precision)
    metrics = trainer.train().metrics
    result = {
        "samples_per_s": metrics["train_samples_per_second"],
        "runtime_s": metrics["train_runtime"],
        "train_loss": metrics["train_loss"],
        "precision": precision,
        "sampling": args.train_sampling_strategy,
        "padding": f"max_length {cfg.naive.padding_length}" if naive else "dynamic",
    }
    return result, trainer.model, tokenizer


def best_rate(fn: Callable[[], object], items: int, repeats: int) -> tuple[float, object]:
    """Items per second of the fastest of ``repeats`` calls (the least disturbed), and its result."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return items / best, result


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


def inference(cfg: DictConfig, model_dir: Path, texts: list[str], threads: int) -> dict:
    """``transformers.pipeline`` against each Predictor backend on ``texts``: rate, ratio, agreement, latency."""
    repeats = int(cfg.inference.repeats)
    classify = pipeline("text-classification", model=str(model_dir), device="cpu")

    def run_pipeline() -> list[str]:
        return [r["label"] for r in classify(texts, batch_size=int(cfg.inference.pipeline_batch_size), truncation=True)]

    classify(texts[:64], batch_size=int(cfg.inference.pipeline_batch_size), truncation=True)  # warm-up
    rate, reference = best_rate(run_pipeline, len(texts), repeats)
    results = {
        "pipeline": {
            "sentences_per_s": rate,
            "ratio": 1.0,
            "agreement": 1.0,
            "batch_size": int(cfg.inference.pipeline_batch_size),
        }
    }
    latency_texts = texts[: int(cfg.latency.sentences)]
    latency = {"pipeline": latency_ms(lambda t: classify(t, truncation=True), latency_texts)}
    for backend in cfg.inference.backends:
        predictor = Predictor(model_dir, backend=backend, batch_size=int(cfg.inference.batch_size), threads=threads)
        predictor.predict(texts[:64])  # warm-up
        rate, records = best_rate(lambda p=predictor: p.predict(texts), len(texts), repeats)
        results[backend] = {
            "sentences_per_s": rate,
            "ratio": rate / results["pipeline"]["sentences_per_s"],
            "agreement": agreement([r["label"] for r in records], reference),
            "batch_size": predictor.batch_size,
        }
        latency[f"predictor_{backend}"] = latency_ms(predictor.predict, latency_texts)
    return {"sentences": len(texts), "methods": results, "latency_ms": latency}


def split_accuracy(model_dir: Path, split: Dataset, labels: list[str], backends: Sequence[str], threads: int) -> dict:
    """Accuracy on the test split of each backend, next to the export's agreement figures."""
    gold = [labels[i] for i in split["label"]]
    accuracy = {}
    for backend in backends:
        records = Predictor(model_dir, backend=backend, threads=threads).predict(list(split["text"]))
        accuracy[backend] = agreement([r["label"] for r in records], gold)
    return {"sentences": len(split), "accuracy": accuracy}


def write_lines(path: Path, texts: Sequence[str], count: int) -> None:
    """An input file of ``count`` lines, the sentences repeated, written without holding it in memory."""
    with path.open("w", encoding="utf-8") as handle:
        for text in islice(cycle(texts), count):
            handle.write(text + "\n")


# Runs argv[1:] and prints the peak RSS (KiB) of that child alone. A child's peak includes the memory of
# the process that started it, up to its exec: started from this small interpreter rather than from the
# benchmark (which holds several models), it is the child's own.
RSS_PROBE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_of_prediction(script: Path, model_dir: Path, texts: Sequence[str], count: int, options: Sequence[str]) -> dict:
    """Peak RSS and rate of ``scripts/predict.py`` labelling a ``count``-line file, run as a child process."""
    with tempfile.TemporaryDirectory(prefix="claimstance-bench-") as tmp:
        folder = Path(tmp)
        write_lines(folder / "input.txt", texts, count)
        predict = [
            sys.executable,
            str(script),
            f"model_dir={model_dir}",
            f"input={folder / 'input.txt'}",
            f"output={folder / 'output.jsonl'}",
            f"hydra.run.dir={folder / 'run'}",
            *options,
        ]
        start = time.perf_counter()
        probe = subprocess.run([sys.executable, "-c", RSS_PROBE, *predict], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if probe.returncode != 0:
            raise RuntimeError(f"{' '.join(predict)} failed:\n{probe.stderr[-3000:]}")
        with (folder / "output.jsonl").open("rb") as handle:
            written = sum(1 for _ in handle)
    peak_kib = int(probe.stdout.split()[-1])
    return {"sentences": written, "peak_rss_mb": peak_kib / 1024, "seconds": seconds, "sentences_per_s": written / seconds}


def matmul_gflops(dtype: torch.dtype, size: int, seconds: float) -> float:
    """Sustained GFLOP/s of a square matrix multiply: the ceiling for a transformer's dense layers."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    return 2 * size**3 / timer.blocked_autorange(min_run_time=seconds).median / 1e9


def flops_per_token(model: PreTrainedModel, tokens: int, training: bool, batch: int = 8) -> float:
    """FLOPs the model spends per token on sentences of ``tokens`` tokens (forward, or forward and backward)."""
    ids = torch.randint(1000, 2000, (batch, tokens))
    labels = torch.zeros(batch, dtype=torch.long)
    model.train(training)
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(training):
        output = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
        if training:
            output.loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / (batch * tokens)


def share_of_bound(rate: float, tokens_per_item: float, flops: float, gflops: float) -> dict:
    """The rate the matmul ceiling allows for items of this size, and the share of it reached."""
    bound = gflops * 1e9 / (tokens_per_item * flops)
    return {"bound_per_s": bound, "share": rate / bound}


def check_targets(result: Mapping, targets: Mapping) -> dict:
    """Each acceptance figure with its target and whether it was met."""
    methods = result["inference"]["methods"]
    figures = {
        "training_speedup": (result["training"]["speedup"], targets["training_speedup"], "min"),
        "onnx_speedup": (methods.get("onnx", {}).get("ratio"), targets["onnx_speedup"], "min"),
        "onnx_agreement": (methods.get("onnx", {}).get("agreement"), targets["onnx_agreement"], "min"),
        "int8_speedup": (methods.get("onnx-int8", {}).get("ratio"), targets["int8_speedup"], "min"),
        "peak_rss_gb": (result["memory"]["peak_rss_mb"] / 1024, targets["peak_rss_gb"], "max"),
        "wall_minutes": (result["wall_s"] / 60, targets["wall_minutes"], "max"),
    }
    return {
        name: {
            "value": value,
            "target": target,
            "met": value is not None and (value >= target if kind == "min" else value < target),
        }
        for name, (value, target, kind) in figures.items()
    }


def table_row(label: str, *cells: str) -> str:
    """One line of the table: a label column, then right-aligned cells."""
    return f"{label:<46}" + "".join(f"{cell:>12}" for cell in cells)


def format_table(result: Mapping) -> str:
    """The figures as a plain-text table (the README's Performance section quotes it)."""
    training, inference_, memory, bound = result["training"], result["inference"], result["memory"], result["bound"]
    lines = [table_row(f"training: {training['sentences']} sentences, 1 epoch", "samples/s", "ratio", "train loss", "of bound")]
    for name in ("naive", "default"):
        row = training[name]
        lines.append(
            table_row(
                f"  {name}: {row['padding']}, {row['precision']}, {row['sampling']}",
                f"{row['samples_per_s']:.1f}",
                f"{row['ratio']:.1f}x",
                f"{row['train_loss']:.3f}",
                f"{row['bound']['share']:.0%}",
            )
        )
    lines.append(table_row(f"inference: {inference_['sentences']} sentences", "sentences/s", "ratio", "agreement", "of bound"))
    for name, row in inference_["methods"].items():
        label = f"transformers.pipeline(batch_size={row['batch_size']})" if name == "pipeline" else f"Predictor {name}"
        cells = (
            f"{row['sentences_per_s']:.1f}",
            f"{row['ratio']:.1f}x",
            f"{row['agreement']:.1%}",
            f"{row['bound']['share']:.0%}",
        )
        lines.append(table_row(f"  {label}", *cells))
    lines.append(table_row("single-sentence latency", "p50 ms", "p95 ms"))
    lines += [table_row(f"  {name}", f"{row['p50']:.1f}", f"{row['p95']:.1f}") for name, row in inference_["latency_ms"].items()]
    quality = result["test_split"]
    lines += [
        f"test split, {quality['sentences']} sentences: accuracy "
        + ", ".join(f"{name} {value:.1%}" for name, value in quality["accuracy"].items())
        + "; labels as PyTorch's: "
        + ", ".join(f"{name} {check['label_agreement']:.1%}" for name, check in quality["export_checks"].items()),
        f"scripts/predict.py on {memory['sentences']:,} lines ({memory['backend']}): peak RSS {memory['peak_rss_mb']:.0f} MB, "
        f"{memory['sentences_per_s']:.0f} sentences/s start-up included",
        "matmul: "
        + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in bound["matmul_gflops"].items())
        + f"; model: {bound['forward_mflops_per_token']:.1f} MFLOP/token forward, {bound['training_mflops_per_token']:.1f} "
        f"training; {bound['tokens_per_sentence']:.1f} tokens/sentence",
        f"machine: {result['machine']['cpu']}, {result['machine']['threads']} thread(s); wall {result['wall_s'] / 60:.1f} min",
    ]
    for name, check in result["targets"].items():
        value = "n/a" if check["value"] is None else f"{check['value']:.3g}"
        lines.append(f"target {name}: {value} (target {check['target']:g}) {'met' if check['met'] else 'NOT MET'}")
    return "\n".join(lines)


def overrides() -> list[str]:
    """The command-line overrides of this run, so bench.json says how to repeat it."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def benchmark(cfg: DictConfig) -> dict:
    """Every measurement, in order: training, export, inference, memory, matmul bound."""
    started = time.perf_counter()
    threads = int(cfg.threads or default_threads())
    torch.set_num_threads(threads)
    labels = list(cfg.data.labels)
    dataset = prepare_dataset(cfg.data)
    split = dataset["train"]
    if cfg.train.samples:
        split = split.shuffle(seed=int(cfg.seed)).select(range(min(int(cfg.train.samples), len(split))))

    naive, _, _ = train_one(cfg, split, labels, naive=True)
    default, model, tokenizer = train_one(cfg, split, labels, naive=False)
    model_dir = Path(cfg.paths.run_dir) / "model"
    test_texts = list(dataset["test"]["text"])
    checks = export_model(model, tokenizer, model_dir, files={}, sample_texts=test_texts, onnx=True, int8=True, overwrite=True)

    texts = corpus_sentences(cfg.data.annotations, int(cfg.inference.sentences), int(cfg.seed))
    inference_ = inference(cfg, model_dir, texts, threads)
    quality = split_accuracy(model_dir, dataset["test"], labels, list(cfg.inference.backends), threads)
    memory_options = [f"backend={cfg.memory.backend}", f"chunk_size={cfg.memory.chunk_size}", f"threads={threads}"]
    script = Path(cfg.paths.root) / "scripts" / "predict.py"
    memory = peak_rss_of_prediction(script, model_dir, texts, int(cfg.memory.sentences), memory_options)

    fresh = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    train_tokens = float(token_lengths(tokenizer, split["text"], int(cfg.data.max_length)).mean())
    infer_tokens = float(token_lengths(tokenizer, texts, int(cfg.data.max_length)).mean())
    forward = flops_per_token(fresh, round(infer_tokens), training=False)
    backward = flops_per_token(fresh, round(train_tokens), training=True)
    gflops = {"fp32": matmul_gflops(torch.float32, int(cfg.matmul.size), float(cfg.matmul.seconds))}
    if cpu_supports_bf16():
        gflops["bf16"] = matmul_gflops(torch.bfloat16, int(cfg.matmul.size), float(cfg.matmul.seconds))

    for row in (naive, default):
        row["ratio"] = row["samples_per_s"] / naive["samples_per_s"]
        row["bound"] = share_of_bound(row["samples_per_s"], train_tokens, backward, gflops.get(row["precision"], gflops["fp32"]))
    for row in inference_["methods"].values():  # int8 runs on integer units and may pass the fp32 bound
        row["bound"] = share_of_bound(row["sentences_per_s"], infer_tokens, forward, gflops["fp32"])
    result = {
        "machine": machine(threads),
        "command": " ".join(["python scripts/benchmark.py", *overrides()]),
        "training": {"sentences": len(split), "epochs": 1, "naive": naive, "default": default},
        "inference": inference_,
        "test_split": {**quality, "export_checks": checks},
        "memory": {**memory, "backend": cfg.memory.backend, "chunk_size": int(cfg.memory.chunk_size)},
        "bound": {
            "matmul_gflops": gflops,
            "forward_mflops_per_token": forward / 1e6,
            "training_mflops_per_token": backward / 1e6,
            "tokens_per_sentence": infer_tokens,
            "tokens_per_training_sentence": train_tokens,
        },
    }
    result["training"]["speedup"] = default["ratio"]
    result["wall_s"] = time.perf_counter() - started
    result["targets"] = check_targets(result, cfg.targets)
    return result


@exits_cleanly
def run(cfg: DictConfig) -> dict:
    """``scripts/benchmark.py``: measure, write ``bench.json``, print the table."""
    result = benchmark(cfg)
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    log.info("\n%s", format_table(result))
    log.info("Wrote %s", output)
    return result
