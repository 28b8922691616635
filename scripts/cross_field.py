"""Leave-one-field-out over the document corpus: python scripts/cross_field.py [key=value ...]."""

from claimstance.commands.cli import cross_field

if __name__ == "__main__":
    cross_field()
