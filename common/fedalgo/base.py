"""The client-side federated algorithm: what a client shares, and how the global model it
receives enters its own.

Everything here runs on the client, before local training. The server only ever averages
``local_after_training - global`` over the shared keys, so any rule of this kind leaves the
server, and SecAgg+'s masked sum, untouched.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor

from common.ssl.base import SSLMethod

Weights = dict[str, Tensor]

# The "online encoder" of FedU/FedEMA in their terms: backbone + projection MLP. Divergences
# between a client and the global model are measured on these weights only.
ONLINE_MODULES: tuple[str, ...] = ("encoder", "projector")
PREDICTOR = "predictor"


def module_of(key: str) -> str:
    """Top-level submodule of a state-dict key ("encoder.net.0.weight" -> "encoder")."""
    return key.split(".", 1)[0]


def divergence(a: Weights, b: Weights, modules: tuple[str, ...] = ONLINE_MODULES) -> float:
    """||a - b||_2 over the keys of ``modules``, all of them flattened into one vector.

    Computed in float64 so that small divergences between large models stay exact.
    """
    keys = [k for k in a if module_of(k) in modules]
    if not keys:
        raise ValueError(f"no weights of {modules} to measure a divergence on")
    total = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys)
    return math.sqrt(total)


def online_and_predictor(method: SSLMethod) -> tuple[str, ...]:
    """Online encoder + projector, and the predictor when ``method`` has one."""
    children = dict(method.named_children())
    return tuple(m for m in (*ONLINE_MODULES, PREDICTOR) if m in children)


class FedAlgorithm:
    """Hooks ``common.local_round`` calls on the client around local training.

    * ``shared_modules``: which submodules cross the network (the default: the method's
      own split, ``SSLMethod.shared_modules``). Server and clients must agree, so this may
      depend on the method's structure only, never on a client's data or state.
    * ``merge``: the weights a client trains from this round, given the fresh global
      weights and, when ``keeps_local_weights``, its own shared weights after its last
      round (``None`` at its first participation).
    * ``state_dict`` / ``load_state_dict``: extra scalars kept on the client across rounds.
    """

    name: ClassVar[str] = ""
    keeps_local_weights: ClassVar[bool] = False

    def __init__(self, **hparams: Any) -> None:
        if hparams:
            raise TypeError(f"{type(self).__name__}: unknown hyper-parameters {sorted(hparams)}")

    def shared_modules(self, method: SSLMethod) -> tuple[str, ...]:
        return tuple(method.shared_modules)

    def shared_keys(self, method: SSLMethod) -> list[str]:
        """State-dict keys sent to the server, in registration order (the wire order).

        Floating-point tensors of the shared modules only: integer buffers never travel.
        """
        modules = self.shared_modules(method)
        return [
            k
            for k, v in method.state_dict().items()
            if module_of(k) in modules and v.is_floating_point()
        ]

    def local_keys(self, method: SSLMethod) -> list[str]:
        """Every other state-dict key: what the client keeps for itself between rounds."""
        shared = set(self.shared_keys(method))
        return [k for k in method.state_dict() if k not in shared]

    def merge(
        self, global_weights: Weights, local_prev: Weights | None
    ) -> tuple[Weights, dict[str, float]]:
        """(weights to start local training from, figures for the client's own log)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, float]:
        return {}

    def load_state_dict(self, state: dict[str, float]) -> None:
        if state:
            raise ValueError(f"{self.name}: unexpected client state {sorted(state)}")


def check_same_keys(global_weights: Weights, local_prev: Weights) -> None:
    """A client's saved weights must cover exactly the shared keys it now receives."""
    if set(global_weights) != set(local_prev):
        missing = sorted(set(global_weights) ^ set(local_prev))[:5]
        raise ValueError(
            f"saved local weights do not match the shared keys (differ in {missing}); "
            "was the client's state written under another method or fed-algorithm?"
        )


def blend(local: Weights, global_weights: Weights, mu: float) -> Weights:
    """mu * local + (1 - mu) * global, key by key."""
    check_same_keys(global_weights, local)
    return {
        k: (mu * local[k].to(g.dtype) + (1.0 - mu) * g).to(g.dtype)
        for k, g in global_weights.items()
    }


def copy_weights(weights: Weights) -> Weights:
    return {k: v.detach().clone() for k, v in weights.items()}


__all__ = [
    "ONLINE_MODULES",
    "PREDICTOR",
    "FedAlgorithm",
    "Weights",
    "blend",
    "check_same_keys",
    "copy_weights",
    "divergence",
    "module_of",
    "online_and_predictor",
]
