"""Speed of training and inference: the naive Hugging Face setup against claimstance's defaults.

``run(cfg)`` is the whole of ``scripts/benchmark.py``. Everything is measured in one process on
the same sentences and the same model, so the ratios hold even where absolute figures drift with
the machine's load. The bound turns rates into a share of what the CPU could do at best: for each
precision, the fastest GEMM kernel available here (torch, ONNX Runtime), timed at the shapes the
model runs (``bench.bound``). The arithmetic on the timings and the table are in ``bench.figures``, the inputs
built from the corpus in ``bench.inputs``.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import transformers
from datasets import Dataset, DatasetDict
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    default_data_collator,
    pipeline,
    set_seed,
)

from claimstance.bench.bound import flops_per_token, precision_peaks
from claimstance.bench.figures import (
    METHOD_PRECISION,
    agreement,
    best_rate,
    check_targets,
    latency_ms,
    model_gemms,
    over_bound,
    share_of_bound,
    unavailable,
)
from claimstance.bench.inputs import (
    build_articles,
    corpus_documents,
    corpus_sentences,
    predict_config,
)
from claimstance.bench.processes import peak_rss_of_prediction, startup
from claimstance.config import command_line, default_threads
from claimstance.data.dataset import prepare_dataset
from claimstance.inference.artifacts import ONNX_FILE, check_export
from claimstance.inference.backends import (
    BACKENDS_FILE,
    choose_backend,
    cpu_has_bf16,
    cpu_identity,
    read_backends,
    runnable_backends,
)
from claimstance.inference.export import export_model, export_onnx, record_backends
from claimstance.inference.predictor import Predictor
from claimstance.inference.tagging import tag
from claimstance.training.models import tokenize, training_arguments

log = logging.getLogger(__name__)


def machine(threads: int) -> dict:
    """What the figures were measured on: they mean little without it."""
    return {
        **cpu_identity(),
        "cores_available": default_threads(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


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
    model, tokenizer = instantiate(cfg.model, labels=labels).build()
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


# --- inference methods -----------------------------------------------------------------------


def inference(cfg: DictConfig, model_dir: Path, texts: list[str], threads: int, backends: Sequence[str]) -> dict:
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
    for backend in backends:
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


def backend_options(cfg: DictConfig, threads: int) -> dict:
    """``record_backends``' settings from ``cfg.backends``."""
    return {
        "speed_sentences": int(cfg.backends.speed_sentences),
        "calibration_sentences": int(cfg.backends.calibration_sentences),
        "repeats": int(cfg.backends.repeats),
        "f1_tolerance": float(cfg.backends.f1_tolerance),
        "min_agreement": float(cfg.backends.min_agreement),
        "threads": threads,
        "batch_size": int(cfg.inference.batch_size),
    }


def measured_export(cfg: DictConfig, source: Path, dataset: DatasetDict, threads: int) -> Path:
    """The export to measure: ``source`` itself when its ``backends.json`` was measured on this CPU, else a copy
    in the run folder completed there (ONNX, int8 models, ``backends.json`` on the test split).

    The benchmark never writes into ``source`` (a training run's export).
    """
    source = source.resolve()  # outputs/latest is a link a later training run moves
    check_export(source)
    record = read_backends(source)
    if record is not None and {k: record["machine"].get(k) for k in ("cpu", "flags")} == cpu_identity():
        return source
    target = Path(cfg.paths.run_dir) / "model"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(BACKENDS_FILE))
    if not (target / ONNX_FILE).is_file():
        model = AutoModelForSequenceClassification.from_pretrained(str(target))
        export_onnx(model, AutoTokenizer.from_pretrained(str(target)), target / ONNX_FILE)
    test = dataset["test"]
    record_backends(
        target, list(test["text"]), list(test["label"]), list(dataset["train"]["text"]), **backend_options(cfg, threads)
    )
    log.info("Measuring a copy of %s, its backends measured on this CPU: %s", source, target)
    return target


def held_out(model_dir: Path) -> dict:
    """The export's ``backends.json`` (held-out macro-F1, agreement on all and on answered sentences, speed, qualified)
    and the backend ``Predictor(backend="auto")`` picks here, with why."""
    record = read_backends(model_dir)
    auto, reason = choose_backend(model_dir)
    return {**record, "auto_here": auto, "auto_reason": reason}


# --- end-to-end article tagging -------------------------------------------------


def tag_articles(cfg: DictConfig, model_dir: Path, documents: Sequence[tuple[str, Sequence[str]]], threads: int) -> dict:
    """The ``predict`` job on a folder of articles (splitting, prediction, JSONL and HTML all timed) against ``pipeline()``.

    The pipeline gets the same sentences already split (the tagged rows' text), so the ratio shows what
    tagging whole articles costs against classifying sentences someone else has split. Every method runs once per
    round, the pipeline included, for ``articles.repeats`` rounds; each keeps its fastest round, so that load from
    other processes falls on all of them alike.
    """
    folder = Path(cfg.paths.run_dir) / "articles"
    files = build_articles(documents, folder / "input", int(cfg.articles.count))
    jobs = {
        backend: predict_config(
            Path(cfg.paths.root),
            model_dir=str(model_dir),
            text=None,
            input=str(folder / "input"),
            input_format="article",
            layout="paragraphs",
            output=str(folder / f"{backend}.jsonl"),
            html=str(folder / f"{backend}.html"),
            summary=False,
            min_confidence=None,
            no_claim_label=cfg.data.no_claim_label,
            backend=backend,
            batch_size=int(cfg.inference.batch_size),
            chunk_size=int(cfg.articles.chunk_size),
            threads=threads,
            expected_labels=None,
        )
        for backend in cfg.articles.backends
    }
    batch_size = int(cfg.inference.pipeline_batch_size)
    classify = pipeline("text-classification", model=str(model_dir), device="cpu", batch_size=batch_size)
    seconds, counts, texts = {}, {}, []
    for _ in range(max(1, int(cfg.articles.repeats))):
        for backend, job in jobs.items():
            start = time.perf_counter()
            counts[backend] = tag(job)
            seconds[backend] = min(seconds.get(backend, float("inf")), time.perf_counter() - start)
            if not texts:
                with Path(job.output).open(encoding="utf-8") as handle:
                    texts = [" ".join(json.loads(line)["text"].split()) for line in handle]
                classify(texts[:64], truncation=True)  # warm-up
        start = time.perf_counter()
        classify(texts, truncation=True)
        seconds["pipeline"] = min(seconds.get("pipeline", float("inf")), time.perf_counter() - start)
    rate = len(texts) / seconds["pipeline"]
    methods = {"pipeline": {"sentences_per_s": rate, "seconds": seconds["pipeline"], "batch_size": batch_size, "ratio": 1.0}}
    for backend in jobs:
        row = {"sentences_per_s": counts[backend] / seconds[backend], "seconds": seconds[backend]}
        methods[backend] = {**row, "ratio": row["sentences_per_s"] / rate}
    if "auto" in methods:
        methods["auto"]["backend"] = choose_backend(model_dir)[0]
    return {"files": len(files), "sentences": len(texts), "methods": methods}


# --- the whole run ---------------------------------------------------------------------------


def benchmark(cfg: DictConfig) -> dict:
    """Every measurement, in order: training, export, inference, test split, articles, start-up, memory, bound."""
    started = time.perf_counter()
    threads = int(cfg.threads or default_threads())
    torch.set_num_threads(threads)
    cpu_bf16 = cpu_has_bf16()
    run_dir, root = Path(cfg.paths.run_dir), Path(cfg.paths.root)
    labels = list(cfg.data.labels)
    dataset = prepare_dataset(cfg.data)
    split = dataset["train"]
    if cfg.train.samples:
        split = split.shuffle(seed=int(cfg.seed)).select(range(min(int(cfg.train.samples), len(split))))

    naive, _, _ = train_one(cfg, split, labels, naive=True)
    default, model, tokenizer = train_one(cfg, split, labels, naive=False)
    if cfg.model_dir is None:
        model_dir, source = run_dir / "model", "trained here, 1 epoch"
        export_model(
            model,
            tokenizer,
            model_dir,
            files={},
            sample_texts=list(dataset["test"]["text"]),
            onnx=True,
            int8=True,
            overwrite=True,
        )
        test = dataset["test"]
        heldout = (list(test["text"]), list(test["label"]))
        record_backends(model_dir, *heldout, list(dataset["train"]["text"]), **backend_options(cfg, threads))
    else:
        model_dir, source = measured_export(cfg, Path(cfg.model_dir), dataset, threads), f"model_dir={cfg.model_dir}"

    runnable = runnable_backends(model_dir)
    backends = [b for b in cfg.inference.backends if b in runnable]
    texts = corpus_sentences(cfg.data.annotations, int(cfg.inference.sentences), int(cfg.seed))
    inference_ = inference(cfg, model_dir, texts, threads, backends)
    inference_["skipped"] = {
        b: unavailable(b, cpu_bf16) or "its model file is not in the export" for b in cfg.inference.backends if b not in backends
    }
    documents = corpus_documents(cfg.articles.documents)
    articles = tag_articles(cfg, model_dir, documents, threads)
    script = root / "scripts" / "predict.py"
    start_up = startup(
        script, model_dir, documents[0][1][: int(cfg.startup.sentences)], run_dir / "startup", int(cfg.startup.repeats)
    )
    memory_options = [f"backend={cfg.memory.backend}", f"chunk_size={cfg.memory.chunk_size}", f"threads={threads}"]
    memory = peak_rss_of_prediction(script, model_dir, texts, int(cfg.memory.sentences), memory_options)

    measured = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    trained_architecture, _ = instantiate(cfg.model, labels=labels).build()  # frozen layers as trained: their backward is skipped
    train_tokens = float(token_lengths(tokenizer, split["text"], int(cfg.data.max_length)).mean())
    infer_tokens = float(token_lengths(AutoTokenizer.from_pretrained(str(model_dir)), texts, int(cfg.data.max_length)).mean())
    forward = flops_per_token(measured, round(infer_tokens), training=False)
    backward = flops_per_token(trained_architecture, round(train_tokens), training=True)
    batch = int(cfg.inference.batch_size)
    gemms = model_gemms(measured.config, batch, round(infer_tokens))
    peaks = precision_peaks(gemms, threads, float(cfg.matmul.seconds), cpu_bf16)

    for row in (naive, default):
        row["ratio"] = row["samples_per_s"] / naive["samples_per_s"]
        gflops = peaks[row["precision"]]["gflops"]
        row["bound"] = {**share_of_bound(row["samples_per_s"], train_tokens, backward, gflops), "precision": row["precision"]}
    for name, row in inference_["methods"].items():
        precision = METHOD_PRECISION[name]
        row["bound"] = {
            **share_of_bound(row["sentences_per_s"], infer_tokens, forward, peaks[precision]["gflops"]),
            "precision": precision,
        }
    rows = {f"training {name}": row for name, row in (("naive", naive), ("default", default))}
    rows |= {f"inference {name}": row for name, row in inference_["methods"].items()}
    result = {
        "machine": machine(threads),
        "command": command_line("benchmark.py"),
        "model": {"dir": str(model_dir), "source": source},
        "training": {"sentences": len(split), "epochs": 1, "naive": naive, "default": default},
        "inference": inference_,
        "test_split": held_out(model_dir),
        "articles": articles,
        "startup": start_up,
        "memory": {**memory, "backend": cfg.memory.backend, "chunk_size": int(cfg.memory.chunk_size)},
        "bound": {
            "batch": batch,
            "tokens": round(infer_tokens),
            "precisions": peaks,
            "forward_mflops_per_token": forward / 1e6,
            "gemm_share_of_forward": sum(g.count * g.flops for g in gemms) / (batch * round(infer_tokens)) / forward,
            "training_mflops_per_token": backward / 1e6,
            "tokens_per_sentence": infer_tokens,
            "tokens_per_training_sentence": train_tokens,
            "exceeded": over_bound(rows),
        },
    }
    result["training"]["speedup"] = default["ratio"]
    result["wall_s"] = time.perf_counter() - started
    result["targets"] = check_targets(result, cfg.targets)
    return result
