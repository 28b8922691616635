"""Label sentences with an exported model: python scripts/predict.py model_dir=DIR text="..." | input=FILE."""

from claimstance.commands.cli import predict

if __name__ == "__main__":
    predict()
