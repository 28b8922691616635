"""Staged outputs appear whole, and with the modes the user's umask gives a plain ``open``/``mkdir``, not 0700/0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from claimstance.atomic import staged_file, staged_folder


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under ``request.param`` as the process umask, then put the old one back."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return stat.filemode(path.stat().st_mode)


@pytest.mark.parametrize(
    ("umask", "folder", "file"), [(0o022, "drwxr-xr-x", "-rw-r--r--"), (0o077, "drwx------", "-rw-------")], indirect=["umask"]
)
def test_staged_outputs_follow_the_umask(umask: int, folder: str, file: str, tmp_path: Path):
    with staged_folder(tmp_path / "export") as staging:
        (staging / "inside.txt").write_text("x")
        (staging / "sub").mkdir()
        (staging / "weights.safetensors").write_text("w")
        (staging / "weights.safetensors").chmod(0o600)  # as safetensors leaves the weights it writes
    with staged_file(tmp_path / "rows.jsonl") as handle:
        handle.write("{}\n")
    assert mode(tmp_path / "export") == folder
    assert mode(tmp_path / "export" / "sub") == folder and mode(tmp_path / "export" / "inside.txt") == file
    assert mode(tmp_path / "export" / "weights.safetensors") == file
    assert mode(tmp_path / "rows.jsonl") == file
    assert os.umask(umask) == umask  # the staging left the process umask as it found it


@pytest.mark.parametrize("umask", [0o022], indirect=True)
def test_a_replaced_file_takes_the_new_mode_and_a_failed_one_leaves_nothing(umask: int, tmp_path: Path):
    target = tmp_path / "report.html"
    target.write_text("old")
    target.chmod(0o600)
    with staged_file(target) as handle:
        handle.write("new")
    assert target.read_text() == "new" and mode(target) == "-rw-r--r--"
    with pytest.raises(RuntimeError), staged_file(tmp_path / "half.html") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "half") as staging:
        (staging / "a").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022], indirect=True)
def test_predict_writes_world_readable_jsonl_and_html(umask: int, tiny_export: Path, tmp_path: Path):
    from conftest import compose_train

    from claimstance.commands.predict import run

    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "a.txt").write_text("Leaders urge calm\n\nThe mayor said she will open two shelters.\n", encoding="utf-8")
    output, html = tmp_path / "out" / "tags.jsonl", tmp_path / "out" / "report.html"
    overrides = [f"input={articles}", "input_format=article", f"output={output}", f"html={html}"]
    cfg = compose_train(overrides, tmp_path, config_name="predict", values={"model_dir": str(tiny_export)})
    assert run(cfg) == 2
    assert mode(output) == mode(html) == "-rw-r--r--"
