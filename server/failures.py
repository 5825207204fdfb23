"""Client failures in words: the line that says what went wrong, not a transport dump.

A client's exception reaches the server wrapped by Flower (and, in simulation, by Ray):
an ``Error(code=..., reason=...)`` whose text starts with actor ids and tracebacks. The
operator needs the client's own message ("local data has 1 non-finite values; ...").
"""

from __future__ import annotations

import re

from common.processes import ANSI_COLOUR

EXCEPTION_LINE = re.compile(r"^\s*[A-Za-z_.]*(?:Error|Exception|Fault)[A-Za-z_]*: \S")
LIMIT = 300


def describe_failure(text: str) -> str:
    """The most specific one-line reason found in a failure's text."""
    lines = [
        line.strip()
        for line in ANSI_COLOUR.sub("", text).replace("\\n", "\n").replace("\\'", "'").splitlines()
        if line.strip()
    ]
    found = [line.rsplit("Message: ", 1)[1] for line in lines if "Message: " in line]
    if not found:
        found = [line for line in lines if EXCEPTION_LINE.match(line)]
    best = found[-1] if found else " ".join(lines)
    return best.rstrip("'\")> ")[:LIMIT]
