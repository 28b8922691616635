"""claimstance: a transformer that labels news sentences as commitment, caution, request (or none)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("claimstance")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import claimstance.data.corpus` stays free of torch and transformers.
    if name == "Predictor":
        from claimstance.inference.predictor import Predictor

        return Predictor
    raise AttributeError(name)
