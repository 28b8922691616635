"""Bad input of every kind: one clear message naming where and what, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import ROOT, compose_train, run_script, write_jsonl

from claimstance.config import minilm_dir
from claimstance.data.textio import InputError
from claimstance.errors import ConfigError, UserError
from claimstance.inference.artifacts import ExportError
from claimstance.inference.documents import read_inputs
from claimstance.inference.predictor import Predictor

LABELS = ["commitment", "caution", "request"]


def exits_with_message(entry, cfg, caplog) -> str:
    """Call a script's ``run(cfg)`` as the script would; it must exit with code 2 and log one clean error."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        entry(cfg)
    assert exit_info.value.code == 2
    assert isinstance(exit_info.value.__cause__, UserError)  # a user's mistake, not a crash: no traceback is printed
    errors = [r.getMessage() for r in caplog.records if r.name == "claimstance" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("error: ")
    return errors[0]


@pytest.mark.slow  # loads torch
def test_overlong_sentences_are_truncated_with_a_count(caplog):
    from datasets import Dataset, DatasetDict

    from claimstance.training.models import tiny_bert, tokenize

    model, tokenizer = tiny_bert(minilm_dir(), LABELS)
    long_text = "The ministry said it will fund the clinics " * 40
    data = DatasetDict({"train": Dataset.from_dict({"text": [long_text, "Short one.", long_text]})})
    with caplog.at_level(logging.WARNING):
        encoded = tokenize(data, tokenizer, max_length=32)
    assert "2 sentence(s) longer than data.max_length=32 tokens were truncated (train: 2)" in caplog.text
    assert max(encoded["train"]["length"]) == 32


@pytest.mark.slow  # loads torch
def test_max_length_beyond_the_model_limit(tmp_path):
    from claimstance.training.models import tiny_bert
    from claimstance.training.transformer import check_model_limits

    model, _ = tiny_bert(minilm_dir(), LABELS, max_positions=64)
    cfg = compose_train(["data.max_length=128"], tmp_path)
    with pytest.raises(ConfigError, match="data.max_length=128 exceeds the model's limit of 64 tokens"):
        check_model_limits(cfg, model)


@pytest.mark.slow  # loads torch
def test_unreachable_model_name_explains_offline_use():
    from claimstance.training.models import ModelLoadError, load_pretrained

    with pytest.raises(
        ModelLoadError, match="not a local folder, and the Hugging Face Hub could not provide it.*model.name_or_path=DIR"
    ):
        load_pretrained("no-such-org/no-such-model-claimstance", LABELS)


def test_predict_rejects_missing_model_folder(tmp_path):
    with pytest.raises(ExportError, match="model folder does not exist"):
        Predictor(tmp_path / "nowhere")


@pytest.mark.slow
def test_predict_rejects_a_model_with_other_labels(tiny_export):
    with pytest.raises(
        ExportError, match=r"trained for labels \['commitment', 'caution', 'request', 'none'\] but \['yes', 'no'\]"
    ):
        Predictor(tiny_export, expected_labels=["yes", "no"])


@pytest.mark.slow
def test_a_100000_character_line_is_predicted(tiny_export, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("The council will review the budget. " * 2800 + "\nShort sentence here.\n")
    records = list(Predictor(tiny_export, backend="torch").predict_stream(read_inputs(path)))
    assert len(records) == 2 and len(records[0]["text"]) > 100_000


@pytest.mark.parametrize(
    "content, message",
    [
        (b"fine line\nbad \xff byte\n", "bad.txt:2: invalid UTF-8 byte at column 5"),
        (b"text\n\x00\x01\x02binary\n", "bad.txt:2: NUL byte; the input is binary"),
        (b"\n  \n", "bad.txt: no sentences in the file"),
    ],
)
def test_unreadable_prediction_input_names_the_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        list(read_inputs(path))


def test_jsonl_prediction_input_needs_text(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "ok"}, {"body": "no text"}])
    with pytest.raises(InputError, match="in.jsonl:2: needs a non-empty string field 'text'"):
        list(read_inputs(path))


def test_predict_cli_empty_text_and_missing_model(tmp_path, caplog):
    from claimstance.commands.predict import run

    # The text is checked before any model is loaded, so an empty one is named even without a model.
    empty = compose_train([], tmp_path, config_name="predict", values={"model_dir": f"{tmp_path}/gone", "text": " "})
    assert "text is empty" in exits_with_message(run, empty, caplog)
    missing = compose_train([], tmp_path, config_name="predict", values={"model_dir": f"{tmp_path}/gone", "text": "hello"})
    assert "model folder does not exist" in exits_with_message(run, missing, caplog)


def bad_annotations(tmp_path):
    """A folder whose one file has a malformed line 2 and a case-variant label on line 3."""
    good = {"id": "a", "text": "The board will meet.", "label": "commitment", "source": "authored", "domain": "x"}
    lines = [json.dumps(good), "{oops", json.dumps(good | {"id": "b", "label": "Caution", "text": "Other."})]
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "bad.jsonl").write_text("\n".join(lines) + "\n")
    return [
        "data=sentences",
        f"data.annotations={tmp_path}/ann",
        "data.challenge=null",
        f"data.output_dir={tmp_path}/processed",
    ]


def test_build_dataset_cli_reports_every_problem_and_writes_nothing(tmp_path, caplog):
    from claimstance.commands.build_dataset import run

    cfg = compose_train(bad_annotations(tmp_path), tmp_path, config_name="build_dataset")
    output = exits_with_message(run, cfg, caplog)
    assert f"{tmp_path}/ann/bad.jsonl:2: malformed JSON" in output
    assert f"{tmp_path}/ann/bad.jsonl:3: unknown label 'Caution'; write 'caution'" in output
    assert not (tmp_path / "processed").exists()


@pytest.mark.slow
def test_build_dataset_script_exits_2_with_the_message_on_stderr(tmp_path):
    """The one subprocess run of scripts/build_dataset.py: Hydra's tool logging puts the error on stderr, no traceback."""
    result = run_script("build_dataset.py", *bad_annotations(tmp_path), f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2
    assert f"{tmp_path}/ann/bad.jsonl:2: malformed JSON" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and not (tmp_path / "processed").exists()


@pytest.mark.slow  # loads torch
def test_train_cli_rejects_bad_config_before_any_work(tmp_path, caplog):
    from claimstance.commands.train import run

    cfg = compose_train(["model=tiny", "trainer.args.learning_rate=-1", f"data.output_dir={tmp_path}/processed"], tmp_path)
    assert "trainer.args.learning_rate must be > 0" in exits_with_message(run, cfg, caplog)
    assert not (tmp_path / "processed").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_train_cli_unknown_key_is_named(tmp_path):  # Hydra rejects the key before run(): only a subprocess sees it
    result = run_script("train.py", "trainer.args.learnin_rate=1", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0 and "learnin_rate" in result.stdout + result.stderr


def test_seed_file_is_readable_as_an_article():
    sentences = list(read_inputs(ROOT / "seeds" / "000_ccd737c3ae17ccd4.txt", "article"))
    assert any(s.startswith("“We are in this, if necessary, for the long haul,”") for s in sentences)
