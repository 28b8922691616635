"""Matplotlib set up once for files, not screens: every module that draws imports ``plt`` from here."""

import matplotlib

matplotlib.use("Agg")  # no display needed: runs write PNG files
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt"]
