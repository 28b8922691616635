"""Every config group option composes, and bad values fail with the key named."""

from __future__ import annotations

import pytest
from conftest import CONFIGS, ROOT, compose_train
from omegaconf import OmegaConf, open_dict

from claimstance.config import check_config
from claimstance.errors import ConfigError


@pytest.mark.parametrize(
    "override",
    [
        "model=minilm",
        "model=tiny",
        "trainer=gpu",
        "logger=none",
        "logger=csv",
        "experiment=three_labels",
        "experiment=quick",
    ],
)
def test_group_options_compose(tmp_path, override):
    cfg = compose_train([override], tmp_path)
    check_config(cfg)
    assert cfg.data.labels[0] == "commitment"


def string_leaves(node) -> list[str]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in string_leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in string_leaves(value)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_entry_configs_compose(tmp_path, name):
    overrides = ["model_dir=/x"] if name in ("predict", "evaluate") else []
    cfg = compose_train(overrides, tmp_path, config_name=name)
    with open_dict(cfg):
        del cfg["hydra"]  # as the script's run(cfg) gets it
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
        ("data.labels", ["commitment", "x"], "data.descriptions has no line for \\['x'\\]"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train([], tmp_path, values={key: value}))
