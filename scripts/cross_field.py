"""Leave-one-field-out over the document corpus: python scripts/cross_field.py [key=value ...]."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.tools.cross_field import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="cross_field")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
