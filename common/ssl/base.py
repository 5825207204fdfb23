"""The interface every self-supervised method implements, and its federated bookkeeping."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn


def encoder_out_dim(encoder: nn.Module) -> int:
    """Feature width of `encoder`, read from its `out_dim` attribute (all ENCODERS have one)."""
    dim = getattr(encoder, "out_dim", None)
    if not isinstance(dim, int) or dim <= 0:
        raise ValueError(
            f"{type(encoder).__name__} has no positive integer `out_dim`; pass in_dim= explicitly"
        )
    return dim


class SSLMethod(nn.Module):
    """A pretext task wrapped around an encoder.

    The federated split is by submodule name: the modules in `shared_modules` (the online
    encoder and projector) are averaged across clients; everything else in the state dict
    (predictor, EMA target, counters) stays on the client and must be persisted there.
    """

    name: ClassVar[str] = ""
    shared_modules: ClassVar[tuple[str, ...]] = ("encoder", "projector")
    # Run-config keys (kebab-case) this method takes as constructor keyword arguments.
    config_hparams: ClassVar[tuple[str, ...]] = ()

    encoder: nn.Module

    def __init__(self, encoder: nn.Module, **hparams: Any) -> None:
        super().__init__()
        if hparams:
            raise TypeError(f"{type(self).__name__}: unknown hyper-parameters {sorted(hparams)}")
        self.encoder = encoder

    def training_loss(self, v1: Tensor, v2: Tensor) -> Tensor:
        """Scalar pretext loss for a batch seen through two augmented views."""
        raise NotImplementedError

    def forward(self, v1: Tensor, v2: Tensor) -> Tensor:
        return self.training_loss(v1, v2)

    def after_step(self) -> None:
        """Hook run after every optimizer step (BYOL: EMA update of the target). No-op here."""

    def on_global_update(self) -> None:
        """Hook run after the shared weights were replaced by the new global ones. No-op here."""

    def init_local_state(self) -> None:
        """Hook for a client with no saved state, run once the global weights are loaded.

        Local state must then start from the global model, not from this client's own random
        initialisation (BYOL: the target starts as a copy of the global online network).
        """
