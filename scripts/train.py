"""Fine-tune, evaluate and export the claim classifier: python scripts/train.py [overrides]."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.train import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
