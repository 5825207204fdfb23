"""Server-side linear probe of encoders, when the server can read the data set.

In simulation the server sees the same data set as the clients and probes on the
held-out split (``common.eval.protocol``); a deployment server without data skips it
and says so in the summary.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

from common.client_data import load_with_split
from common.config import RunConfig
from common.eval.embed import embed
from common.eval.linear_probe import linear_probe

log = logging.getLogger("fedssl.server")


def probe_encoders(cfg: RunConfig, encoders: dict[str, nn.Module]) -> dict[str, Any]:
    """Linear-probe accuracy and macro-F1 of each named encoder on the held-out split."""
    try:
        ds, split = load_with_split(cfg.dataset, cfg.seed)
    except Exception as exc:  # the server may hold no data at all
        return {"skipped": f"server cannot load {cfg.dataset!r}: {exc}"}
    if not split.can_probe:
        return {"skipped": f"{cfg.dataset}: no labeled samples to probe with"}
    out: dict[str, Any] = {"protocol": split.description}
    ytr = ds.y[split.probe_train]
    yte = ds.y[split.probe_test]
    for name, encoder in encoders.items():
        ftr = embed(encoder, ds.x[split.probe_train])
        fte = embed(encoder, ds.x[split.probe_test])
        if not (np.isfinite(ftr).all() and np.isfinite(fte).all()):
            out[name] = {"error": "encoder produced non-finite features"}
            continue
        out[name] = linear_probe(ftr, ytr, fte, yte, seed=cfg.seed)
    return out
