"""Training and inference speed, naive setup against the defaults, in one run: python scripts/benchmark.py [overrides]."""

from claimstance.commands.cli import benchmark

if __name__ == "__main__":
    benchmark()
