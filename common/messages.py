"""Names fedssl's ServerApp and ClientApp agree on inside Flower messages (defined once)."""

from __future__ import annotations

# The training instruction's config carries the round number under this key.
ROUND_KEY = "server-round"
# A query message with this record tells a device that its run has ended.
RUN_END_RECORD = "fedssl-run-end"
# What a device's ClientApp writes into its state dir when told so; ``fedssl client``
# watches for it and exits.
RUN_END_FILE = "run-ended.json"
