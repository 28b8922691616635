"""Draw a blind sample or score a second annotation pass: python scripts/agreement.py action=draw|score."""

from claimstance.commands.cli import agreement

if __name__ == "__main__":
    agreement()
