"""Regenerate the datasheet's label x domain tables: python scripts/datasheet.py."""

from claimstance.commands.cli import datasheet

if __name__ == "__main__":
    datasheet()
