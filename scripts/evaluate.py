"""Evaluate an exported model on a saved split or any annotations: python scripts/evaluate.py model_dir=DIR."""

from claimstance.commands.cli import evaluate

if __name__ == "__main__":
    evaluate()
