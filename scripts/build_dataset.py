"""Validate the annotations and save the DatasetDict: python scripts/build_dataset.py [overrides]."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.dataset import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="build_dataset")
def main(cfg: DictConfig) -> None:
    return run(cfg)


if __name__ == "__main__":
    main()
