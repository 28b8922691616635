"""Label sentences with an exported model: python scripts/predict.py model_dir=DIR text="..." | input=FILE."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.predict import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    return run(cfg)


if __name__ == "__main__":
    main()
