"""The error every bad input raises: it names the file and line, the key, or the language,
and says why. Stage entry points and the CLI print it as one message, without a traceback."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a record, a params key, a missing toolchain), told in its message."""
