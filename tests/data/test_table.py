"""``data=table``: a user's own CSV / TSV / JSONL / parquet / saved dataset in, split from that file alone, bad input named."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from conftest import TINY, compose_train, run_script, write_jsonl
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from claimstance.data.annotations import AnnotationError
from claimstance.data.dataset import prepare_dataset
from claimstance.data.splits import features_for

STANCES = ["favor", "against", "neutral"]
TOPICS = ["the bill", "the new tax", "the park plan", "the school merger"]


def stance_rows(per_label: int = 20) -> list[dict]:
    """Distinct sentences, ``per_label`` of each stance, with a document id shared by 4 rows."""
    rows = []
    for i in range(per_label * len(STANCES)):
        stance = STANCES[i % 3]
        rows.append(
            {"sentence": f"Speaker {i} is {stance} on {TOPICS[i % 4]} (remark {i}).", "stance": stance, "doc": f"d{i // 4}"}
        )
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def table_cfg(tmp_path, path, **data):
    values = {f"data.{key}": value for key, value in {"path": str(path), **data}.items()}
    return compose_train(["data=table"], tmp_path, values=values).data


STANCE_FIELDS = {"text_field": "sentence", "label_field": "stance"}


def texts_of(dataset) -> set[str]:
    return {text for part in dataset.values() for text in part["text"]}


def test_csv_with_its_own_columns_gives_its_labels_and_only_its_rows(tmp_path):
    rows = stance_rows()
    dataset = prepare_dataset(table_cfg(tmp_path, write_csv(tmp_path / "stance.csv", rows), **STANCE_FIELDS))
    assert list(dataset) == ["train", "validation", "test"]  # no project corpus, no challenge
    assert dataset["train"].features == features_for(["against", "favor", "neutral"])  # sorted, as every reader expects
    assert texts_of(dataset) == {row["sentence"] for row in rows}
    names = dataset["test"].features["label"].names
    assert Counter(names[i] for i in dataset["test"]["label"]) == {"favor": 3, "against": 3, "neutral": 3}  # 15% of 20 each
    assert dataset["train"][0]["id"].startswith("stance.csv:") and dataset["train"][0]["source"] == "stance.csv"
    assert (tmp_path / "data" / "processed" / "table" / "summary.json").is_file()


def test_jsonl_text_label_with_listed_labels_in_that_order(tmp_path, caplog):
    rows = [{"text": r["sentence"], "label": r["stance"]} for r in stance_rows()]
    rows.append({"text": "An off-topic line.", "label": "spam"})
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    caplog.set_level(logging.INFO)
    dataset = prepare_dataset(table_cfg(tmp_path, path, labels=["neutral", "favor", "against"]))
    assert dataset["train"].features["label"].names == ["neutral", "favor", "against"]
    assert (
        sum(len(part) for part in dataset.values()) == 60 and "Left out of the table (not in data.labels): 1 spam" in caplog.text
    )


def test_parquet_tsv_and_a_folder_of_files(tmp_path):
    rows = stance_rows()
    Dataset.from_list([{"text": r["sentence"], "label": r["stance"]} for r in rows]).to_parquet(str(tmp_path / "t.parquet"))
    assert texts_of(prepare_dataset(table_cfg(tmp_path, tmp_path / "t.parquet"))) == {r["sentence"] for r in rows}
    folder = tmp_path / "parts"
    write_csv(folder / "a.tsv", rows[:30], delimiter="\t")
    write_jsonl(folder / "b.jsonl", rows[30:])
    dataset = prepare_dataset(table_cfg(tmp_path, folder, name="parts", **STANCE_FIELDS))
    assert texts_of(dataset) == {r["sentence"] for r in rows}
    assert {Path(s).name for part in dataset.values() for s in part["source"]} == {"a.tsv", "b.jsonl"}


def test_save_to_disk_folders_keep_class_label_names_and_their_splits(tmp_path):
    rows = stance_rows()
    features = Features({"sentence": Value("string"), "stance": ClassLabel(names=STANCES)})
    whole = Dataset.from_list(rows, features=Features(features | {"doc": Value("string")}))
    whole.save_to_disk(str(tmp_path / "saved"))
    dataset = prepare_dataset(table_cfg(tmp_path, tmp_path / "saved", name="saved", **STANCE_FIELDS))
    assert dataset["train"].features["label"].names == ["against", "favor", "neutral"]  # names, not the saved ids
    splits = DatasetDict(
        {"train": whole.select(range(40)), "dev": whole.select(range(40, 50)), "test": whole.select(range(50, 60))}
    )
    splits.save_to_disk(str(tmp_path / "saved_dict"))
    kept = prepare_dataset(table_cfg(tmp_path, tmp_path / "saved_dict", name="dict", split_field="split", **STANCE_FIELDS))
    assert {name: len(part) for name, part in kept.items()} == {"train": 40, "validation": 10, "test": 10}


def test_text_pair_column_and_the_same_sentence_for_two_targets(tmp_path):
    rows = [
        {"sentence": f"We should fund item {i}.", "target": t, "stance": s}
        for i in range(20)
        for t, s in (("tax", "favor"), ("park", "against"))
    ]
    dataset = prepare_dataset(
        table_cfg(tmp_path, write_csv(tmp_path / "pairs.csv", rows), text_pair_field="target", **STANCE_FIELDS)
    )
    assert dataset["train"].features["text_pair"] == Value("string")
    assert {(r["text_pair"], r["label"]) for part in dataset.values() for r in part} == {("tax", 1), ("park", 0)}


def test_group_field_keeps_documents_whole_and_split_field_is_used_as_given(tmp_path):
    rows = stance_rows(40)
    dataset = prepare_dataset(table_cfg(tmp_path, write_csv(tmp_path / "docs.csv", rows), group_field="doc", **STANCE_FIELDS))
    home = {}
    for split, part in dataset.items():
        for group in part["group"]:
            assert home.setdefault(group, split) == split
    assert len(home) == 30
    given = [r | {"part": ("train", "dev", "TEST")[i // 3 % 3]} for i, r in enumerate(stance_rows())]
    own = prepare_dataset(
        table_cfg(tmp_path, write_csv(tmp_path / "own.csv", given), name="own", split_field="part", **STANCE_FIELDS)
    )
    assert {name: len(part) for name, part in own.items()} == {"train": 21, "validation": 21, "test": 18}  # as written


# --- bad input: one message naming file, row and column; exit 2; nothing written -------------------------------------


def fails(tmp_path, path, message, **data):
    with pytest.raises(AnnotationError, match=message):
        prepare_dataset(table_cfg(tmp_path, path, **data))
    assert not (tmp_path / "data" / "processed").exists()


def test_missing_column_names_the_columns_there_are(tmp_path):
    path = write_csv(tmp_path / "stance.csv", stance_rows())
    fails(tmp_path, path, r"stance.csv: no column 'text' \(data.text_field\); the columns are doc, sentence, stance")


def test_empty_text_names_file_row_and_column(tmp_path):
    rows = stance_rows()
    rows[2]["sentence"] = "  "
    rows[4]["sentence"] = ""
    path = write_csv(tmp_path / "stance.csv", rows)
    fails(
        tmp_path,
        path,
        r"2 problems.*\n.*stance.csv row 3, column 'sentence': text is empty\n.*stance.csv row 5, column",
        **STANCE_FIELDS,
    )


def test_listed_label_absent_or_too_rare(tmp_path):
    path = write_csv(tmp_path / "stance.csv", stance_rows())
    fails(
        tmp_path,
        path,
        r"stance.csv, column 'stance': label 'maybe' is in data.labels but has no examples",
        labels=["favor", "maybe"],
        **STANCE_FIELDS,
    )
    rare = [r for r in stance_rows() if r["stance"] != "neutral"] + [r for r in stance_rows() if r["stance"] == "neutral"][:2]
    path = write_csv(tmp_path / "rare.csv", rare)
    fails(tmp_path, path, r"rare.csv, column 'stance': label 'neutral' has 2 example\(s\).*needs at least 7", **STANCE_FIELDS)


def test_unknown_split_value_and_a_group_across_given_splits(tmp_path):
    rows = [r | {"split": ("train", "validation", "test")[i % 3]} for i, r in enumerate(stance_rows())]
    rows[3]["split"] = "training"
    fails(
        tmp_path,
        write_csv(tmp_path / "s.csv", rows),
        r"s.csv row 4, column 'split': unknown split 'training'; use train",
        split_field="split",
        **STANCE_FIELDS,
    )
    rows[3]["split"] = "train"
    message = (
        r"s.csv row 2, column 'doc': group 'd0' is in validation here but in train at .*s.csv row 1; a group stays in one split"
    )
    fails(tmp_path, write_csv(tmp_path / "s.csv", rows), message, split_field="split", group_field="doc", **STANCE_FIELDS)


def test_unsupported_and_unreadable_files(tmp_path):
    (tmp_path / "notes.xlsx").write_bytes(b"PK\x03\x04")
    fails(
        tmp_path, tmp_path / "notes.xlsx", r"notes.xlsx: unsupported file type '.xlsx'; use .csv, .tsv, .jsonl, .json, .parquet"
    )
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    fails(tmp_path, tmp_path / "bad.parquet", r"bad.parquet: cannot be read as a table")
    (tmp_path / "latin.csv").write_bytes(b"text,label\ncaf\xe9,a\n")
    fails(tmp_path, tmp_path / "latin.csv", r"latin.csv: cannot be read as a table \(UnicodeDecodeError")
    fails(tmp_path, tmp_path / "nowhere.csv", r"nowhere.csv: no such file or folder")


def test_build_dataset_command_exits_2_and_config_needs_a_path(tmp_path, caplog):
    from claimstance.commands.build_dataset import run
    from claimstance.config import data_problems

    rows = stance_rows()
    rows[0]["sentence"] = ""
    cfg = compose_train(
        [
            "data=table",
            f"data.path={write_csv(tmp_path / 'stance.csv', rows)}",
            "data.text_field=sentence",
            "data.label_field=stance",
        ],
        tmp_path,
        config_name="build_dataset",
    )
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="claimstance"), pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2 and "stance.csv row 1, column 'sentence': text is empty" in caplog.text
    assert not (tmp_path / "data" / "processed").exists()
    assert data_problems(compose_train(["data=table"], tmp_path).data)[0].startswith("data.path is required")


@pytest.mark.slow
def test_train_on_a_csv_exports_its_labels_and_scores_only_its_splits(tmp_path):
    write_csv(tmp_path / "stance.csv", stance_rows())
    result = run_script(
        "train.py",
        *TINY,
        "data=table",
        f"data.path={tmp_path}/stance.csv",
        "data.text_field=sentence",
        "data.label_field=stance",
        f"paths.data_dir={tmp_path}/data",
        f"paths.output_dir={tmp_path}/outputs",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["against", "favor", "neutral"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["evaluated"] == ["test"]


def test_malformed_json_line_is_named_by_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{broken\n')
    fails(tmp_path, path, r"mine.jsonl:2: malformed JSON")


def test_repeated_id_one_text_under_two_labels_and_a_given_split_that_leaks(tmp_path):
    rows = [r | {"key": f"k{i}"} for i, r in enumerate(stance_rows())]
    rows[7]["key"] = "k1"
    rows[8] = rows[2] | {"key": "k99", "stance": "favor" if rows[2]["stance"] != "favor" else "against"}
    message = r"s.csv row 8, column 'key': duplicate id 'k1' \(also .*s.csv row 2\)\n"
    message += r".*s.csv row 9, column 'stance': same text as .*row 3"
    fails(tmp_path, write_csv(tmp_path / "s.csv", rows), message, id_field="key", **STANCE_FIELDS)
    given = [r | {"split": ("train", "validation", "test")[i // 3 % 3]} for i, r in enumerate(stance_rows())]
    given[9] = given[0] | {"split": "test"}  # the same sentence in train and in test
    fails(
        tmp_path,
        write_csv(tmp_path / "g.csv", given),
        r"g.csv row 10: 1 test sentence\(s\) also trained on",
        split_field="split",
        **STANCE_FIELDS,
    )


def test_a_challenge_table_is_scored_apart_and_may_not_repeat_a_sentence(tmp_path):
    rows = stance_rows()
    challenge = [{"sentence": f"Written apart, number {i}.", "stance": STANCES[i % 3]} for i in range(6)]
    path = write_csv(tmp_path / "stance.csv", rows)
    cfg = table_cfg(tmp_path, path, challenge=str(write_csv(tmp_path / "hard.csv", challenge)), **STANCE_FIELDS)
    dataset = prepare_dataset(cfg)
    assert list(dataset) == ["train", "validation", "test", "challenge"] and len(dataset["challenge"]) == 6
    leaked = write_csv(tmp_path / "leaked.csv", challenge + [{"sentence": rows[0]["sentence"], "stance": rows[0]["stance"]}])
    fails(
        tmp_path / "again",
        path,
        r"leaked.csv row 7: 1 challenge sentence\(s\) also in the corpora",
        challenge=str(leaked),
        **STANCE_FIELDS,
    )
