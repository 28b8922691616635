"""Train on 25/50/100% of the train split and plot test/challenge macro-F1: python scripts/learning_curve.py."""

from claimstance.commands.cli import learning_curve

if __name__ == "__main__":
    learning_curve()
