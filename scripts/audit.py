"""Find probably wrong labels (k-fold + cleanlab): python scripts/audit.py [data=...] [model=tfidf_logreg] [folds=5]."""

from claimstance.commands.cli import audit

if __name__ == "__main__":
    audit()
