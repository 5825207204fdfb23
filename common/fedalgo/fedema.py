"""FedEMA (Zhuang et al., "Divergence-aware Federated Self-Supervised Learning", ICLR 2022,
arXiv:2204.04385): blend the global model into the local one, the more of the local the
further the client has drifted, instead of overwriting it."""

from __future__ import annotations

from common.fedalgo.base import (
    FedAlgorithm,
    Weights,
    blend,
    check_same_keys,
    copy_weights,
    divergence,
    online_and_predictor,
)
from common.ssl.base import SSLMethod

DEFAULT_TAU = 0.7  # the paper's autoscaler target


class FedEMA(FedAlgorithm):
    """W_k <- mu W_k + (1 - mu) W_g, with mu = min(lambda ||W_g - W_k||, 1)  (the paper's update).

    * W_k is the client's shared weights after its last local training, W_g the global
      weights just received; both cover the online encoder, projector and, for BYOL and
      SimSiam, the predictor (all three are shared and blended with the same mu).
    * ||W_g - W_k|| is the L2 norm over the online encoder and projector only (the paper's
      "online encoder"), all their weights flattened into one vector.
    * lambda (the "scaler") is tau / ||W_g - W_k||, computed once, at the first round in
      which the client has a W_k, so that mu = tau there; it then stays fixed and lives in
      the client's state. A client's first participation has no W_k: it starts from W_g
      (plain FedAvg) and computes lambda at its second. A zero divergence (nothing to
      blend) postpones lambda to the next round instead of dividing by zero.
    """

    name = "fedema"
    keeps_local_weights = True

    def __init__(self, tau: float = DEFAULT_TAU) -> None:
        super().__init__()
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"fedema tau must be in (0, 1], got {tau}")
        self.tau = tau
        self.scaler: float | None = None

    def shared_modules(self, method: SSLMethod) -> tuple[str, ...]:
        return online_and_predictor(method)

    def mu(self, dist: float) -> float:
        """The blend weight for divergence ``dist``; sets the scaler on first use."""
        if self.scaler is None:
            if dist <= 0.0:
                return 0.0
            self.scaler = self.tau / dist
        return min(self.scaler * dist, 1.0)

    def merge(
        self, global_weights: Weights, local_prev: Weights | None
    ) -> tuple[Weights, dict[str, float]]:
        if local_prev is None:
            return copy_weights(global_weights), {}
        check_same_keys(global_weights, local_prev)
        dist = divergence(global_weights, local_prev)
        mu = self.mu(dist)
        info = {"divergence": dist, "fedema-mu": mu}
        if self.scaler is not None:
            info["fedema-scaler"] = self.scaler
        return blend(local_prev, global_weights, mu), info

    def state_dict(self) -> dict[str, float]:
        return {} if self.scaler is None else {"scaler": self.scaler}

    def load_state_dict(self, state: dict[str, float]) -> None:
        unknown = set(state) - {"scaler"}
        if unknown:
            raise ValueError(f"fedema: unexpected client state {sorted(unknown)}")
        scaler = state.get("scaler")
        self.scaler = float(scaler) if scaler is not None else None
