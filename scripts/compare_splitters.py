"""Score the sentence splitters on wrapped and unwrapped articles: python scripts/compare_splitters.py [key=value ...]."""

from claimstance.commands.cli import compare_splitters

if __name__ == "__main__":
    compare_splitters()
