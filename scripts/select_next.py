"""Pick the unlabelled sentences worth labelling next: python scripts/select_next.py input=FOLDER output=next.jsonl n=50."""

from claimstance.commands.cli import select_next

if __name__ == "__main__":
    select_next()
