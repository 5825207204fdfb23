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
