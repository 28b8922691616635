"""Train on 25/50/100% of the train split and plot test/challenge macro-F1: python scripts/learning_curve.py."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.tools.curve import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="learning_curve")
def main(cfg: DictConfig) -> None:
    return run(cfg)


if __name__ == "__main__":
    main()
