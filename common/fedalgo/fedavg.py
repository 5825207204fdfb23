"""FedAvg of the shared weights (McMahan et al., AISTATS 2017): every round starts from the
global model. Today's default, and the baseline FedU and FedEMA are measured against."""

from __future__ import annotations

from common.fedalgo.base import FedAlgorithm, Weights, copy_weights


class FedAvg(FedAlgorithm):
    """local <- global for the method's own shared modules; nothing else kept.

    The split is the SSL method's (``SSLMethod.shared_modules``): SimCLR shares everything,
    BYOL its online encoder and projector (predictor and target stay local), SimSiam all of
    encoder, projector and predictor.
    """

    name = "fedavg"

    def merge(
        self, global_weights: Weights, local_prev: Weights | None
    ) -> tuple[Weights, dict[str, float]]:
        return copy_weights(global_weights), {}
