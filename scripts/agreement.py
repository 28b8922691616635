"""Draw a blind sample or score a second annotation pass: python scripts/agreement.py action=draw|score."""

import hydra
from omegaconf import DictConfig

import claimstance.config  # noqa: F401  (registers the config resolvers)
from claimstance.tools.agreement import run


@hydra.main(version_base="1.3", config_path="../configs", config_name="agreement")
def main(cfg: DictConfig) -> None:
    return run(cfg)


if __name__ == "__main__":
    main()
