"""Every config group option composes, and bad values fail with the key named."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import CONFIGS, ROOT, compose_train
from omegaconf import OmegaConf, open_dict

from claimstance.config import check_config
from claimstance.errors import ConfigError

FOUR = ["commitment", "caution", "request", "none"]
LABELS = {"experiment=three_labels": FOUR[:3], "data=table": None}  # the rest keep the project's four, in id order
VALUES = {"data=table": {"data.path": "stance.csv"}}  # an option's required value (``???``), as a user would give it
PLUGINS = {  # groups whose options compose only with a Hydra plugin installed
    "hydra/launcher": "hydra_plugins.hydra_submitit_launcher",
    "hparams_search": "hydra_plugins.hydra_optuna_sweeper",
}


def group_options() -> list[str]:
    """``group=option`` for every YAML under ``configs/<group>/`` (nested groups too), as lightning-hydra-template does."""
    return sorted(f"{p.parent.relative_to(CONFIGS)}={p.stem}" for p in CONFIGS.glob("*/**/*.yaml"))


@pytest.mark.parametrize("override", group_options())
def test_every_group_option_composes_with_train(tmp_path, override):
    group = override.split("=")[0]
    if group in PLUGINS and importlib.util.find_spec(PLUGINS[group]) is None:
        pytest.skip(f"{override} needs the {PLUGINS[group]} plugin, which is an optional install")
    cfg = compose_train([override], tmp_path, values=VALUES.get(override))
    check_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as the script's run(cfg) gets it (Hydra fills its own job values at launch)
    values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # every value given, every interpolation resolves
    assert values["data"]["output_dir"].startswith(str(tmp_path))
    labels = cfg.data.labels
    assert (None if labels is None else list(labels)) == LABELS.get(override, FOUR)
    if labels is not None:
        assert list(cfg.data.descriptions) == FOUR  # each label declared once, with its definition


def test_glob_finds_the_groups():
    groups = {option.split("=")[0] for option in group_options()}
    assert {"data", "model", "trainer", "logger", "paths", "hydra", "hydra/launcher", "experiment"} <= groups
    assert "data=table" in group_options()


def string_leaves(node) -> list[str]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in string_leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in string_leaves(value)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_entry_configs_compose(tmp_path, name):
    cfg = compose_train([], tmp_path, config_name=name)
    with open_dict(cfg):
        del cfg["hydra"]  # as the script's run(cfg) gets it
    required = OmegaConf.missing_keys(cfg)
    assert all("." not in key for key in required), f"configs/{name}.yaml leaves nested values unset: {required}"
    for key in required:  # the command's own inputs (model_dir=, input=): given on the command line
        cfg[key] = "/x"
    # every value resolves (no ??? left, no broken interpolation) ...
    values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    # ... and every output and data path follows paths.*: none points into the checkout's own outputs/ or data/
    assert values["paths"]["output_dir"] == f"{tmp_path}/outputs" and values["paths"]["data_dir"] == f"{tmp_path}/data"
    fixed = [v for v in string_leaves(values) if v.startswith((str(ROOT / "outputs"), str(ROOT / "data")))]
    assert not fixed, f"configs/{name}.yaml has paths that ignore paths.output_dir/paths.data_dir: {fixed}"


def test_unknown_key_is_rejected(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="learnin_rate"):
        compose_train(["trainer.args.learnin_rate=1"], tmp_path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("trainer.args.learning_rate", 0, "trainer.args.learning_rate must be > 0"),
        ("trainer.args.num_train_epochs", -1, "trainer.args.num_train_epochs must be > 0"),
        ("trainer.precision", "fp8", "trainer.precision must be auto, fp32, bf16 or fp16"),
        ("data.max_length", 2, "data.max_length must be > 7"),
        ("trainer.args.learning_rate", "fast", "trainer.args.learning_rate must be a number, got str"),
        ("trainer.args.per_device_train_batch_size", 1.5, "per_device_train_batch_size must be an integer"),
        ("data.split.train", 0.8, "data.split fractions must be numbers >= 0 that sum to 1"),
        ("data.labels", ["commitment", "x"], "data.descriptions has no line for \\['x'\\]; declare each label there once"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train([], tmp_path, values={key: value}))


@pytest.mark.parametrize(
    "values, message",
    [
        ({}, "data.path is required"),
        ({"data.path": "x.csv", "data.group_field": "text"}, r"column\(s\) \['text'\] given for two fields"),
        ({"data.path": "x.csv", "data.labels": ["yes"]}, "data.labels must be null .* or a list of two or more distinct labels"),
        (
            {"data.path": "x.csv", "data.labels": ["a", "b"], "data.descriptions": {"c": "?"}},
            r"data.descriptions has \['c'\], which are not in data.labels",
        ),
    ],
)
def test_table_config_problems_name_the_key(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train(["data=table"], tmp_path, values=values))
