"""Fine-tune, evaluate and export the claim classifier: python scripts/train.py [overrides]."""

from claimstance.commands.cli import train

if __name__ == "__main__":
    train()
