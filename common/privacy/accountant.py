"""Privacy accounting of the noised rounds with Google's ``dp-accounting`` library.

Each round that releases a noised aggregate is a sampled Gaussian mechanism:
``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))`` with q = clients per round /
clients in all, composed over the rounds with the Renyi-DP accountant (Mironov 2017;
Mironov, Talwar and Zhang 2019), as in DP-FedAvg (McMahan et al., ICLR 2018, where each
user takes part in a round with probability q). The guarantee is user-level
(adding or removing one client's data) and holds for the released global model.

Flower samples a fixed number of clients without replacement; Poisson accounting is
the usual approximation for that. With every client sampled (q = 1) no amplification
by sampling is claimed and the accounting is exact.
"""

from __future__ import annotations

import logging
import math

import dp_accounting
from dp_accounting.rdp import RdpAccountant

# dp-accounting logs a warning through absl for every Renyi order whose series does not
# converge at small sigma with sampling (hundreds per round); it then leaves that order
# out, which only loosens epsilon. Its errors still show.
logging.getLogger("absl").setLevel(logging.ERROR)


class RdpPrivacyAccountant:
    """Cumulative (epsilon, delta) of the rounds that released a noised aggregate."""

    def __init__(self, noise_multiplier: float, delta: float) -> None:
        if noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be > 0, got {noise_multiplier}")
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        self.noise_multiplier = noise_multiplier
        self.delta = delta
        self.rounds = 0
        self._accountant = RdpAccountant()

    def spend_round(self, sampling_rate: float) -> float:
        """Compose one released round sampled at ``sampling_rate``; return epsilon so far."""
        if not 0.0 < sampling_rate <= 1.0:
            raise ValueError(f"sampling_rate must be in (0, 1], got {sampling_rate}")
        event = dp_accounting.PoissonSampledDpEvent(
            sampling_rate, dp_accounting.GaussianDpEvent(self.noise_multiplier)
        )
        self._accountant.compose(event)
        self.rounds += 1
        return self.epsilon

    @property
    def epsilon(self) -> float:
        """Epsilon at ``delta`` after the rounds spent so far (0 before any)."""
        if self.rounds == 0:
            return 0.0
        eps = float(self._accountant.get_epsilon(self.delta))
        return eps if math.isfinite(eps) else math.inf
