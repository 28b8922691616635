"""``annotate``: tasks out and a table back in, then the whole round trip through a real Label Studio server."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose_train, corpus_sample, run_script, write_jsonl

from claimstance.data.labelstudio import choice_result
from claimstance.errors import UserError

LABELS = ["favor", "against", "neutral"]


def annotate_cfg(tmp_path: Path, **values):
    return compose_train([], tmp_path, config_name="annotate", values=values)


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def ls_task(ident: int, text: str, labels: list[str]) -> dict:
    annotations = [{"completed_by": 1, "result": choice_result(label), "updated_at": f"t{n}"} for n, label in enumerate(labels)]
    return {"id": ident, "data": {"id": f"d:{ident}", "text": text}, "annotations": annotations, "predictions": []}


def test_export_without_a_model_writes_tasks_and_config(tmp_path):
    from claimstance.commands.annotate import run

    sentences = tmp_path / "news.txt"
    sentences.write_text("We back the plan.\nThey reject it.\n", encoding="utf-8")
    cfg = annotate_cfg(
        tmp_path,
        action="export",
        input=str(sentences),
        labels=LABELS,
        output=str(tmp_path / "tasks.json"),
        config_xml=str(tmp_path / "config.xml"),
    )
    assert run(cfg) == 2
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["id"] for t in tasks] == ["news.txt:0", "news.txt:1"]
    assert tasks[1]["data"]["text"] == "They reject it." and "predictions" not in tasks[1]
    assert [c.get("value") for c in ET.parse(tmp_path / "config.xml").getroot().iter("Choice")] == LABELS


def test_export_of_text_pairs_shows_both_texts(tmp_path):
    from claimstance.commands.annotate import run

    pool = write_jsonl(tmp_path / "pairs.jsonl", [{"text": "We back it.", "text_pair": "the plan"}, {"text": "No target."}])
    cfg = annotate_cfg(
        tmp_path,
        action="export",
        input=str(pool),
        labels=LABELS,
        output=str(tmp_path / "t.json"),
        config_xml=str(tmp_path / "c.xml"),
    )
    assert run(cfg) == 2
    assert [t.get("value") for t in ET.parse(tmp_path / "c.xml").getroot().iter("Text")] == ["$text", "$text_pair"]
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert [t["data"]["text_pair"] for t in tasks] == ["the plan", ""]  # Label Studio needs every field its config shows


def test_import_writes_a_table_and_counts_what_it_skipped(tmp_path, caplog):
    from claimstance.commands.annotate import run

    export = [ls_task(1, "We back it.", ["against", "favor"]), ls_task(2, "Open.", [])]
    output = tmp_path / "t.csv"
    cfg = annotate_cfg(tmp_path, action="import", input=str(write_json(tmp_path / "e.json", export)), output=str(output))
    with caplog.at_level(logging.INFO):
        assert run(cfg) == 1
    assert "Skipped 1 task(s) with no annotation" in caplog.text
    assert "1 task(s) had annotations that disagree: kept the most recent of each" in caplog.text
    with output.open(newline="") as handle:
        assert [row["label"] for row in csv.DictReader(handle)] == ["favor"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"action": "push", "input": "x"}, "action must be one of export, import"),
        ({"action": "export", "input": None}, "input= is required"),
        ({"action": "export", "input": "x.txt"}, "give model_dir=EXPORT"),
        ({"action": "import", "input": "missing.json"}, "missing.json: input file does not exist"),
    ],
)
def test_annotate_bad_options_exit_2(tmp_path, values, message):
    from claimstance.commands.annotate import run

    with pytest.raises(SystemExit) as exit_info:
        run(annotate_cfg(tmp_path, **values))
    assert exit_info.value.code == 2
    assert isinstance(exit_info.value.__cause__, UserError) and message in str(exit_info.value.__cause__)


def test_import_of_an_export_with_no_annotation_writes_nothing(tmp_path):
    from claimstance.commands.annotate import run

    export = write_json(tmp_path / "e.json", [ls_task(1, "x", [])])
    with pytest.raises(SystemExit) as exit_info:
        run(annotate_cfg(tmp_path, action="import", input=str(export), output=str(tmp_path / "t.jsonl")))
    assert "no annotated task in this export (1 without an annotation)" in str(exit_info.value.__cause__)
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.slow  # reads the tiny export trained by scripts/train.py
def test_export_pre_annotates_with_the_calibrated_model(tiny_export, tmp_path):
    from claimstance.commands.annotate import run

    rows = [{"id": f"s{n}", "text": row["text"]} for n, row in enumerate(corpus_sample(2))]
    source = write_jsonl(tmp_path / "pool.jsonl", rows)
    cfg = annotate_cfg(
        tmp_path,
        action="export",
        input=str(source),
        model_dir=str(tiny_export),
        output=str(tmp_path / "tasks.json"),
        config_xml=str(tmp_path / "config.xml"),
    )
    assert run(cfg) == len(rows)
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["id"] for t in tasks] == [row["id"] for row in rows]  # the input's own ids are kept
    from claimstance.inference.predictor import Predictor

    expected = Predictor(tiny_export).predict([row["text"] for row in rows])
    for made, want in zip(tasks, expected, strict=True):
        (prediction,) = made["predictions"]
        assert prediction["result"] == choice_result(want["label"])
        assert prediction["score"] == pytest.approx(want["score"], abs=1e-5) and prediction["model_version"]
    choices = [c.get("value") for c in ET.parse(tmp_path / "config.xml").getroot().iter("Choice")]
    assert choices == ["commitment", "caution", "request", "none"]


# The round trip through a real Label Studio: its server and SDK live in their own virtualenv (.venv-labelstudio,
# made by .ci/run), since label-studio pins Django and friends; LABEL_STUDIO_BIN points at another install.
LABEL_STUDIO_BIN = Path(os.environ.get("LABEL_STUDIO_BIN") or ROOT / ".venv-labelstudio" / "bin" / "label-studio")
TOKEN = "claimstance-test-token-0123456789"
START_TIMEOUT = 600  # seconds for /health to answer: its first start migrates a new SQLite database (~105 s of CPU)
SDK_SCRIPT = """
import json, sys
from label_studio_sdk import LabelStudio

job = json.load(sys.stdin)
ls = LabelStudio(base_url=job["url"], api_key=job["token"])
project = ls.projects.create(title="claimstance round trip", label_config=job["config"])
ls.projects.import_tasks(id=project.id, request=job["tasks"])
tasks = list(ls.tasks.list(project=project.id, page_size=1000))
for task in tasks:
    ident = task.data["id"]
    if ident in job["skip"]:
        continue
    if ident in job["corrected"]:  # a first answer, then a later one that differs: the later one is kept
        ls.annotations.create(id=task.id, result=[dict(job["template"], value={"choices": [job["corrected"][ident]]})])
    ls.annotations.create(id=task.id, result=[dict(job["template"], value={"choices": [job["gold"][ident]]})])
print(json.dumps({"project": project.id, "tasks": len(tasks)}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 10) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


@pytest.fixture
def label_studio(tmp_path) -> Iterator[str]:
    """A Label Studio server on 127.0.0.1 with SQLite in ``tmp_path``; stopped at the end whatever happens."""
    if not LABEL_STUDIO_BIN.is_file():
        pytest.skip(f"no Label Studio at {LABEL_STUDIO_BIN}: run .ci/run, or set LABEL_STUDIO_BIN")
    port = free_port()
    env = os.environ | {
        "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "ls-data"),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # before the first start, so --user-token works
        "LATEST_VERSION_CHECK": "false",  # no call to the package index at start
    }
    command = [str(LABEL_STUDIO_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    command += ["--username", "test@example.com", "--password", "claimstance-pass", "--user-token", TOKEN]
    log_path = tmp_path / "label-studio.log"
    log = log_path.open("w")
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"label-studio exited with {server.returncode}:\n{(tmp_path / 'label-studio.log').read_text()[-3000:]}"
                )
            if time.perf_counter() - started > START_TIMEOUT:
                pytest.fail(
                    f"label-studio did not answer in {START_TIMEOUT} s:\n{(tmp_path / 'label-studio.log').read_text()[-3000:]}"
                )
            try:
                if json.loads(get(f"{url}/health", timeout=2)).get("status") == "UP":
                    break
            except (OSError, ValueError):
                time.sleep(1)
        print(f"label-studio answered /health after {time.perf_counter() - started:.0f} s")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and any worker it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


@pytest.mark.slow  # starts Label Studio, reads the tiny export, trains model=tiny on the result
def test_label_studio_round_trip_trains_on_the_human_labels(label_studio, tiny_export, tmp_path):
    from claimstance.commands.annotate import run

    sentences = corpus_sample(15)  # 60 sentences, 15 of each label
    gold = {f"s{n}": row["label"] for n, row in enumerate(sentences)}
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"id": f"s{n}", "text": row["text"]} for n, row in enumerate(sentences)])
    tasks_file, config_file = tmp_path / "tasks.json", tmp_path / "config.xml"
    export_cfg = dict(action="export", input=str(pool), model_dir=str(tiny_export), config_xml=str(config_file))
    assert run(annotate_cfg(tmp_path, **export_cfg, output=str(tasks_file))) == len(gold)
    tasks = json.loads(tasks_file.read_text())
    suggested = {t["data"]["id"]: t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks}
    skip, corrected = ["s0", "s1"], {"s2": next(label for label in set(gold.values()) if label != gold["s2"])}
    started = time.perf_counter()
    job = {
        "url": label_studio,
        "token": TOKEN,
        "config": config_file.read_text(),
        "tasks": tasks,
        "gold": gold,
        "skip": skip,
        "corrected": corrected,
        "template": {key: value for key, value in choice_result("x")[0].items() if key != "value"},
    }
    sdk = subprocess.run(
        [str(LABEL_STUDIO_BIN.parent / "python"), "-c", SDK_SCRIPT],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sdk.returncode == 0, sdk.stderr[-3000:]
    made = json.loads(sdk.stdout.strip().splitlines()[-1])
    assert made["tasks"] == len(gold)
    export = tmp_path / "export.json"
    export.write_bytes(
        get(f"{label_studio}/api/projects/{made['project']}/export?exportType=JSON&download_all_tasks=true", timeout=120)
    )
    table = tmp_path / "table.jsonl"
    assert run(annotate_cfg(tmp_path, action="import", input=str(export), output=str(table))) == len(gold) - len(skip)
    print(f"round trip (project, import, {len(gold)} annotations, export, read back): {time.perf_counter() - started:.1f} s")
    rows = {row["id"]: row for row in map(json.loads, table.read_text().splitlines())}
    assert set(rows) == set(gold) - set(skip)
    assert all(row["label"] == gold[ident] for ident, row in rows.items())  # s2: the later, right answer was kept
    assert all(row["suggested_label"] == suggested[ident] and row["annotator"] for ident, row in rows.items())
    assert all(0 < row["suggested_score"] <= 1 for row in rows.values())
    trained = run_script(
        "train.py",
        *TINY,
        "data=table",
        f"data.path={table}",
        "data.id_field=id",
        f"data.output_dir={tmp_path}/processed",
        f"paths.output_dir={tmp_path}/outputs",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(set(gold.values()))
