"""Server-side linear probe of encoders, when the server can read the data set.

The server probes on the data set's held-out split (``common.eval.protocol``). A run
that probes loads its data set before round 1 (``server.run_setup.input_shape``), so a
missing data set is reported then; a deployment server without data runs with
``evaluate`` off and ``input-shape`` set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from common.client_data import load_with_split
from common.config import RunConfig
from common.eval.linear_probe import probe_encoder
from common.serialize import load_encoder

log = logging.getLogger("fedssl.server")


def probe_encoders(cfg: RunConfig, encoders: dict[str, nn.Module]) -> dict[str, Any]:
    """Linear-probe accuracy and macro-F1 of each named encoder on the held-out split."""
    ds, split = load_with_split(cfg.dataset, cfg.seed)  # loaded before round 1 (run_setup)
    if not split.can_probe:
        return {"skipped": f"{cfg.dataset}: no labeled samples to probe with"}
    out: dict[str, Any] = {"protocol": split.description}
    for name, encoder in encoders.items():
        out[name] = probe_encoder(encoder, ds, split, seed=cfg.seed)
    return out


def probe_checkpoint(cfg: RunConfig, checkpoint: Path) -> dict[str, Any]:
    """The linear probe of one round's global encoder (read from its checkpoint), so a
    run that can probe reports it per round beside the devices' own evaluation."""
    probed = probe_encoders(cfg, {"encoder": load_encoder(checkpoint)})
    if "skipped" in probed:
        return probed
    figures = probed["encoder"]
    return {k: figures[k] for k in ("accuracy", "macro_f1", "error") if k in figures}
