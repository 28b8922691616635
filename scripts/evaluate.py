"""Evaluate an exported model on a saved split or any annotations: python scripts/evaluate.py model_dir=DIR."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.metrics import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    return run(cfg)


if __name__ == "__main__":
    main()
