"""``engine=ray``: the same rows as the local engine, in order, from a local Ray cluster; bad files, addresses, parquet.

The cluster tests are slow (Ray starts in seconds, the tiny export trains once per session); the checks that
fail before Ray is asked (an unreachable address, a parquet file without a text column) are fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import PRIVATE_NETWORK, ROOT, can_isolate_network, compose_train, in_private_network

from claimstance.commands.predict import run
from claimstance.errors import SKIPPED_EXIT
from claimstance.inference.tagging import errors_path, run_tagging

SEED = ROOT / "seeds" / "000_ccd737c3ae17ccd4.txt"


def predict_cfg(tmp_path: Path, model_dir: Path, *overrides: str):
    return compose_train(list(overrides), tmp_path, config_name="predict", values={"model_dir": str(model_dir)})


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def shard_rows(folder: Path) -> list[dict]:
    """Every row of a folder of shards, the shards read in name order (which is the input order)."""
    rows: list[dict] = []
    for shard in sorted(folder.iterdir()):
        if shard.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows += pq.read_table(shard).to_pylist()
        else:
            rows += read_rows(shard)
    return rows


def corpus_articles(count: int) -> list[tuple[str, str]]:
    """``(doc, text)`` of the first ``count`` documents of data/documents: each one's sentences in position order."""
    sentences: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for path in sorted((ROOT / "data" / "documents").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            sentences[row["doc"]].append((row["position"], row["text"]))
    docs = sorted(sentences)[:count]
    return [(doc, " ".join(text for _, text in sorted(sentences[doc]))) for doc in docs]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """The seed article and 50 corpus documents, one article file each."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "000_seed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    for doc, text in corpus_articles(50):
        (folder / f"{doc}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def local_ray():
    """A Ray of 2 CPUs on 127.0.0.1, no dashboard, shut down after the module's tests.

    Where the network can be isolated, these tests run inside a private namespace
    (``test_the_ray_cluster_tests_pass_in_a_private_network``), since Ray listens on every interface.
    """
    ray = pytest.importorskip("ray")
    if can_isolate_network() and not os.environ.get(PRIVATE_NETWORK):
        pytest.skip("runs inside a private network namespace: see test_the_ray_cluster_tests_pass_in_a_private_network")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


def assert_same_rows(ray_rows: list[dict], local_rows: list[dict]) -> None:
    """Same rows in the same order; probabilities to 1e-5 (the actors batch sentences differently)."""
    assert len(ray_rows) == len(local_rows)
    for mine, theirs in zip(ray_rows, local_rows, strict=True):
        assert {k: v for k, v in mine.items() if k not in ("probabilities", "score")} == {
            k: v for k, v in theirs.items() if k not in ("probabilities", "score")
        }
        assert mine["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-5)


def unreachable(tmp_path: Path, address: str, caplog) -> float:
    """Run predict against ``address`` with a 2 s limit; the seconds it took to fail with exit 2."""
    (tmp_path / "a.txt").write_text("The minister will resign.\n")
    caplog.clear()
    started = time.perf_counter()
    overrides = ["engine=ray", f"ray.address='{address}'", "ray.connect_timeout_s=2"]
    cfg = predict_cfg(tmp_path, tmp_path / "model", f"input={tmp_path}", f"output={tmp_path / 'out'}", *overrides)
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    assert f"ray.address={address}: no Ray cluster answered there within 2 s" in caplog.text
    assert "Traceback" not in caplog.text and not (tmp_path / "out").exists()
    return time.perf_counter() - started


@pytest.mark.slow
def test_a_ray_address_that_is_not_ray_fails_within_the_timeout(tiny_export, tmp_path, caplog):
    """An address that drops packets, or (behind a proxy) answers but is not Ray: bounded by connect_timeout_s.

    It runs before the tests that start the module's local Ray: a driver already connected would not connect again.
    """
    pytest.importorskip("ray")
    shutil.copytree(tiny_export, tmp_path / "model")
    assert unreachable(tmp_path, "10.255.255.1:6379", caplog) < 15


@pytest.mark.slow
def test_ray_rows_equal_the_local_engine_in_order(tiny_export, tmp_path, archive, local_ray):
    local = tmp_path / "local.jsonl"
    run_tagging(predict_cfg(tmp_path, tiny_export, f"input={archive}", "input_format=article", f"output={local}"))
    shards = tmp_path / "shards"
    overrides = ["engine=ray", "ray.rows_per_shard=200", "ray.batch_size=64", "ray.actors=2"]
    tagged = run_tagging(
        predict_cfg(tmp_path, tiny_export, f"input={archive}", "input_format=article", f"output={shards}", *overrides)
    )
    local_rows = read_rows(local)
    assert len({row["doc"] for row in local_rows}) == 51 and len(local_rows) > 400
    assert len(list(shards.glob("part-*.jsonl"))) > 1  # several shards, read back in name order
    assert_same_rows(shard_rows(shards), local_rows)
    assert tagged.count == len(local_rows) and tagged.documents == 51 and tagged.skipped == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


@pytest.mark.slow
def test_ray_skips_bad_files_like_the_local_engine(tiny_export, tmp_path, archive, local_ray, caplog):
    (archive / "bad_binary.txt").write_bytes(b"A line.\n\x00\x01 binary\n")
    (archive / "bad_latin1.txt").write_bytes("Une ligne.\nLe pr\u00e9fet a parl\u00e9.\n".encode("latin-1"))
    local = tmp_path / "local.jsonl"
    base = [f"input={archive}", "input_format=article"]
    with pytest.raises(SystemExit) as local_exit:
        run(predict_cfg(tmp_path, tiny_export, *base, f"output={local}"))
    shards = tmp_path / "shards"
    with pytest.raises(SystemExit) as ray_exit:
        run(predict_cfg(tmp_path, tiny_export, *base, f"output={shards}", "engine=ray", "ray.format=parquet"))
    assert local_exit.value.code == ray_exit.value.code == SKIPPED_EXIT
    assert_same_rows(shard_rows(shards), read_rows(local))
    expected = [
        {"file": "bad_binary.txt", "line": 2, "problem": "NUL byte; the input is binary, not text"},
        {"file": "bad_latin1.txt", "line": 2, "problem": "invalid UTF-8 byte at column 6; save the file as UTF-8"},
    ]
    assert read_rows(errors_path(shards)) == read_rows(errors_path(local)) == expected
    skipped = run_tagging(predict_cfg(tmp_path, tiny_export, *base, f"output={shards}", "engine=ray", "on_error=skip"))
    assert [error.file for error in skipped.skipped] == ["bad_binary.txt", "bad_latin1.txt"]


@pytest.mark.slow
def test_ray_reads_parquet_articles(tiny_export, tmp_path, local_ray):
    import pyarrow as pa
    import pyarrow.parquet as pq

    articles = [{"id": doc, "text": text, "desk": "world"} for doc, text in corpus_articles(5)]
    source = tmp_path / "articles.jsonl"
    source.write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(articles), tmp_path / "articles.parquet")
    local = tmp_path / "local.jsonl"
    run_tagging(predict_cfg(tmp_path, tiny_export, f"input={source}", "input_format=article", f"output={local}"))
    shards = tmp_path / "shards"
    parquet = tmp_path / "articles.parquet"
    run_tagging(
        predict_cfg(
            tmp_path,
            tiny_export,
            f"input={parquet}",
            "input_format=article",
            f"output={shards}",
            "engine=ray",
            "ray.actors=[1,2]",
        )
    )
    assert_same_rows(shard_rows(shards), read_rows(local))  # an autoscaling pool gives the same rows


# --- failures before Ray is asked: fast ------------------------------------------------------


def test_a_ray_address_nothing_listens_on_is_one_error(tmp_path, caplog):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert unreachable(tmp_path, f"127.0.0.1:{port}", caplog) < 5


def test_a_parquet_file_without_a_text_column_is_named(tmp_path, caplog):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "stance.parquet"
    pq.write_table(pa.Table.from_pylist([{"sentence": "We will act.", "label": "commitment"}]), source)
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(tmp_path, tmp_path / "model", f"input={source}", f"output={tmp_path / 'out'}", "engine=ray"))
    assert exit_info.value.code == 2
    assert f"{source}: no 'text' column; it has sentence, label" in caplog.text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["html=report.html"], "html= is for the local engine"),
        (["ray.format=csv"], "ray.format must be one of jsonl, parquet, got 'csv'"),
        (["output=null"], "engine=ray writes shards to a folder: give output=DIR"),
        (["ray.address=nowhere"], "ray.address must be null, auto, HOST:PORT or ray://HOST:PORT, got 'nowhere'"),
    ],
)
def test_ray_options_that_cannot_work_are_named(tmp_path, caplog, overrides, message):
    (tmp_path / "a.txt").write_text("The minister will resign.\n")
    cfg = predict_cfg(tmp_path, tmp_path / "model", f"input={tmp_path}", f"output={tmp_path / 'out'}", "engine=ray", *overrides)
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2 and message in caplog.text


@pytest.mark.slow
@pytest.mark.skipif(not can_isolate_network(), reason="needs root, unshare and ip to isolate the network")
def test_the_ray_cluster_tests_pass_in_a_private_network(tiny_export):
    """The tests that start a local Ray, run in a namespace with only loopback: they must all pass, none skipped."""
    pytest.importorskip("ray")
    if os.environ.get(PRIVATE_NETWORK):
        pytest.skip("already inside the namespace")
    result = in_private_network("tests/inference/test_ray.py", tiny_export)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed)", result.stdout.splitlines()[-1])}
    assert counts.get("passed", 0) >= 4 and counts.get("skipped", 0) == 1, result.stdout[-2000:]  # only this test skips there
