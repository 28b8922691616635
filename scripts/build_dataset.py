"""Validate the annotations and save the DatasetDict: python scripts/build_dataset.py [overrides]."""

from claimstance.commands.cli import build_dataset

if __name__ == "__main__":
    build_dataset()
