"""What a user's fresh process costs: cold start of ``scripts/predict.py`` and its peak memory, each in a child process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from claimstance.bench.inputs import article_text, write_lines

# Builds an ONNX Predictor, labels one sentence and prints whether torch got imported on the way.
TORCH_PROBE = (
    "import sys; from claimstance.inference.predictor import Predictor; "
    "Predictor(sys.argv[1], backend='onnx').predict([sys.argv[2]]); print('torch' in sys.modules)"
)


def startup(script: Path, model_dir: Path, sentences: Sequence[str], folder: Path, repeats: int) -> dict:
    """Wall time of a fresh ``scripts/predict.py`` tagging a short article with ONNX (best of ``repeats``).

    Also whether that path imported torch: importing it alone takes most of the start-up budget.
    """
    folder.mkdir(parents=True, exist_ok=True)
    article, output = folder / "short.txt", folder / "short.jsonl"
    article.write_text(article_text(sentences), encoding="utf-8")
    command = [
        sys.executable,
        str(script),
        f"model_dir={model_dir}",
        f"input={article}",
        "input_format=article",
        "backend=onnx",
        f"output={output}",
        "summary=false",
    ]
    runs = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        runs.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    probe = subprocess.run([sys.executable, "-c", TORCH_PROBE, str(model_dir), sentences[0]], capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError(f"the torch-import probe failed:\n{probe.stderr[-3000:]}")
    with output.open("rb") as handle:
        tagged = sum(1 for _ in handle)
    return {
        "seconds": min(runs),
        "runs_s": runs,
        "sentences": tagged,
        "torch_imported": probe.stdout.split()[-1] == "True",
        "command": " ".join(["python", *command[1:]]),
    }


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
        predict_command = [
            sys.executable,
            str(script),
            f"model_dir={model_dir}",
            f"input={folder / 'input.txt'}",
            f"output={folder / 'output.jsonl'}",
            f"hydra.run.dir={folder / 'run'}",
            *options,
        ]
        start = time.perf_counter()
        probe = subprocess.run([sys.executable, "-c", RSS_PROBE, *predict_command], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if probe.returncode != 0:
            raise RuntimeError(f"{' '.join(predict_command)} failed:\n{probe.stderr[-3000:]}")
        with (folder / "output.jsonl").open("rb") as handle:
            written = sum(1 for _ in handle)
    peak_kib = int(probe.stdout.split()[-1])
    return {"sentences": written, "peak_rss_mb": peak_kib / 1024, "seconds": seconds, "sentences_per_s": written / seconds}
