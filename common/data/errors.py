"""The one exception type raised for bad input data."""

from __future__ import annotations

from common.errors import BadInputError


class DataError(BadInputError):
    """Bad input data; message names the source (file/dataset) and the problem.

    Subclasses ValueError so generic callers still catch it, while the CLI can show the message
    alone (no traceback) because it is written for the person who supplied the data.
    """
