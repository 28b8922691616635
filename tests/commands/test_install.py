"""The built wheel in a fresh virtualenv, outside the checkout: train model=tiny on a user's CSV, predict and pre-annotate."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # builds a wheel, installs it with its dependencies, trains
TORCH_SPEC = "torch==2.13.0"  # the Makefile's default: a CPU build, found locally where there is one
LABELS = ["against", "favor", "neutral"]
TOPICS = ["tax", "school", "bridge", "clinic", "park", "port", "rail", "grid", "water", "housing"]
TEMPLATES = {
    "favor": ["We strongly support the {} plan.", "This {} proposal deserves our backing."],
    "against": ["We firmly oppose the {} plan.", "This {} proposal must be rejected."],
    "neutral": ["The {} report was published on Monday.", "The council discussed the {} budget."],
}


def run(command: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CLAIMSTANCE_ROOT", "VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """A virtualenv (outside the checkout) holding the wheel built from this tree; its ``bin`` folder."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    started = time.perf_counter()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(base / "dist"), str(source)], base, 600)
    (wheel,) = (base / "dist").glob("claimstance-*.whl")
    built = time.perf_counter()
    run([sys.executable, "-m", "venv", str(base / "venv")], base, 300)
    pip = [str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run([*pip, TORCH_SPEC], base, 900)
    run([*pip, str(wheel)], base, 1200)
    print(f"wheel built in {built - started:.0f} s; venv with torch and the wheel in {time.perf_counter() - built:.0f} s")
    return base / "venv" / "bin"


def test_the_wheel_trains_on_a_csv_and_predicts_outside_the_checkout(installed, tmp_path):
    rows = [
        {"sentence": template.format(topic), "stance": label}
        for label, templates in TEMPLATES.items()
        for template in templates
        for topic in TOPICS
    ]
    with (tmp_path / "stance.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sentence", "stance"])
        writer.writeheader()
        writer.writerows(rows)
    assert not tmp_path.resolve().is_relative_to(ROOT.resolve())
    started = time.perf_counter()
    train = [
        str(installed / "claimstance-train"),
        "data=table",
        "data.path=stance.csv",
        "data.text_field=sentence",
        "data.label_field=stance",
        "model=tiny",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=2",
    ]
    run(train, tmp_path, 900)
    trained = time.perf_counter()
    export = tmp_path / "outputs" / "latest"
    config = json.loads((export / "config.json").read_text())
    assert sorted(config["id2label"].values()) == LABELS
    predict = [str(installed / "claimstance-predict"), "model_dir=outputs/latest", "text=We strongly support the ferry plan."]
    printed = run(predict, tmp_path, 300).stdout.splitlines()
    rows_out = [json.loads(line) for line in printed if line.startswith("{")]
    assert len(rows_out) == 1 and rows_out[0]["label"] in LABELS
    (tmp_path / "news.txt").write_text("We back the ferry plan.\nThe ferry report came out.\n", encoding="utf-8")
    run([str(installed / "claimstance-annotate"), "action=export", "input=news.txt", "model_dir=outputs/latest"], tmp_path, 300)
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["predictions"][0]["result"][0]["value"]["choices"][0] in LABELS for t in tasks] == [True, True]
    assert (tmp_path / "label_config.xml").is_file()
    print(f"train {trained - started:.0f} s, predict {time.perf_counter() - trained:.0f} s")
