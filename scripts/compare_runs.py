"""Compare the test metrics of several run folders: python scripts/compare_runs.py [runs=[DIR_OR_GLOB,...]]."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.tools.compare import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare_runs")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
