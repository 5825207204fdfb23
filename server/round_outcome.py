"""What one round did: filled in by the strategy's hooks, completed by the round loop."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RoundOutcome:
    round: int
    clients_sampled: int = 0
    clients_aggregated: int = 0
    clients_failed: int = 0
    completed: bool = False
    reason: str = ""
    train_loss: float | None = None
    delta_norm: float | None = None
    clipped_values: int = 0
    failures: list[str] = field(default_factory=list)
    # SecAgg+: wall seconds of each stage (setup, share_keys, collect_masked_vectors,
    # unmask) on the server, where a large cohort's time goes
    secagg_seconds: dict[str, float] = field(default_factory=dict)
    # Central DP (None when off): clients whose delta was clipped to dp-clipping-norm,
    # the std of the noise added to the mean delta (0 when nothing was released), the
    # round's sampling rate, and the cumulative epsilon after it (None: no noise, no claim).
    dp_clipped: int | None = None
    dp_noise_std: float | None = None
    dp_sampling_rate: float | None = None
    dp_epsilon: float | None = None
