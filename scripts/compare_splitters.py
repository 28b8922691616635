"""Score the sentence splitters on wrapped and unwrapped articles: python scripts/compare_splitters.py [key=value ...]."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.tools.splitters import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare_splitters")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
