"""Regenerate the datasheet's label x domain tables: python scripts/datasheet.py."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.tools.datasheet import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="datasheet")
def main(cfg: DictConfig) -> None:
    return run(cfg)


if __name__ == "__main__":
    main()
