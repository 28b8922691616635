"""Serve an exported model over HTTP: python scripts/serve.py model_dir=DIR [port=8000]."""

from claimstance.commands.cli import serve

if __name__ == "__main__":
    serve()
