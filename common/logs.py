"""One readable log format for fedssl's own progress lines."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int = logging.INFO) -> None:
    logger = logging.getLogger("fedssl")
    if any(getattr(h, "_fedssl", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s fedssl %(message)s", "%H:%M:%S"))
    handler._fedssl = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
