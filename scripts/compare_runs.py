"""Compare the test metrics of several run folders: python scripts/compare_runs.py [runs=[DIR_OR_GLOB,...]]."""

from claimstance.commands.cli import compare_runs

if __name__ == "__main__":
    compare_runs()
