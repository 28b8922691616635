"""claimstance: a transformer that labels news sentences as commitment, caution, request (or none)."""

__all__ = ["Predictor"]


def __getattr__(name: str):
    # Lazy, so `import claimstance.corpus` stays free of torch and transformers.
    if name == "Predictor":
        from claimstance.predict import Predictor

        return Predictor
    raise AttributeError(name)
