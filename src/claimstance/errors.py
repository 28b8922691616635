"""The one kind of error a user gets: a message naming the file, row or key, and exit status 2.

Exit status 3 (:data:`SKIPPED_EXIT`) means a batch finished but skipped input it could not read, like the
"ignore corrupt files" options of Spark and Ray: the output holds everything else, the skipped files are listed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

SKIPPED_EXIT = 3


class UserError(Exception):
    """A problem in what the user gave (data, config, paths): reported as one message, no traceback."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work, named by its key."""


def exits_cleanly(entry: Callable) -> Callable:
    """Turn a :class:`UserError` from a command-line entry into one logged message and exit code 2."""

    @functools.wraps(entry)
    def wrapper(*args, **kwargs):
        try:
            return entry(*args, **kwargs)
        except UserError as err:
            logging.getLogger("claimstance").error("error: %s", err)
            raise SystemExit(2) from err

    return wrapper
