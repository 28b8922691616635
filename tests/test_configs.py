"""Every config group option composes, and bad values fail with the key named."""

from __future__ import annotations

import pytest
from conftest import CONFIGS, compose_train

from claimstance.config import ConfigError, check_config


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


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_entry_configs_compose(tmp_path, name):
    overrides = ["model_dir=/x"] if name in ("predict", "evaluate") else []
    assert compose_train(overrides, tmp_path, config_name=name) is not None


def test_unknown_key_is_rejected(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="learnin_rate"):
        compose_train(["trainer.args.learnin_rate=1"], tmp_path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.args.learning_rate=0", "trainer.args.learning_rate must be > 0"),
        ("trainer.args.num_train_epochs=-1", "trainer.args.num_train_epochs must be > 0"),
        ("trainer.precision=fp8", "trainer.precision must be auto, fp32, bf16 or fp16"),
        ("data.max_length=2", "data.max_length must be > 7"),
        ("trainer.args.learning_rate=fast", "trainer.args.learning_rate must be a number, got str"),
        ("trainer.args.per_device_train_batch_size=1.5", "per_device_train_batch_size must be an integer"),
        ("data.split.train=0.8", "data.split fractions must be numbers >= 0 that sum to 1"),
        ("data.labels=[commitment,x]", "data.descriptions has no line for \\['x'\\]"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train([override], tmp_path))
