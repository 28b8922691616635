"""Label Studio round trip: python scripts/annotate.py action=export input=FILE | action=import input=export.json."""

from claimstance.commands.cli import annotate

if __name__ == "__main__":
    annotate()
