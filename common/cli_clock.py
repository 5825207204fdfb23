"""When this fedssl command started: imported first by ``common.cli``, so durations
"in all" include the imports and start-ups a user waits through."""

from __future__ import annotations

import time

STARTED = time.monotonic()
