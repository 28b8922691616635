"""Matplotlib set up once for files, not screens: every module that draws imports ``plt`` from here."""

import matplotlib

matplotlib.use("Agg")  # no display needed: runs write PNG files
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path) -> None:
    """Lay out, write as a PNG at the project's one resolution, and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
