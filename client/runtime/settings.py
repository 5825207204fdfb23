"""The device runtime's settings, its error and the records it returns (``fit_head``'s
summary, one drift response), apart from the loop in ``client.runtime.device_loop``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from client.runtime.adaptation import AdaptConfig
from common.errors import BadInputError

POLICIES = ("linucb", "thompson", "random")
ON_DRIFT = ("adapt", "refit", "none")


class DeviceError(BadInputError):
    """A configuration, label, window or call order the device runtime cannot use."""


@dataclass(frozen=True)
class RuntimeConfig:
    """The loop's settings; every field is checked on construction."""

    policy: str = "linucb"
    alpha: float = 1.0  # LinUCB exploration bonus
    thompson_v: float = 0.5  # linear Thompson posterior scale
    proj_dim: int = 32  # bandit context width (capped by the embedding width and labels)
    warm_start: bool = True  # full-information bandit updates from the labeled windows
    on_drift: str = "adapt"
    drift_threshold: float = 12.0  # CUSUM threshold (client.runtime.drift)
    adapt_after: int = 32  # windows collected after an alarm before the job starts
    buffer_size: int = 256
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise DeviceError(f"unknown policy {self.policy!r}; choose one of {POLICIES}")
        if self.on_drift not in ON_DRIFT:
            raise DeviceError(f"unknown on_drift {self.on_drift!r}; choose one of {ON_DRIFT}")
        if self.proj_dim < 1 or self.adapt_after < 0 or self.buffer_size < 2:
            raise DeviceError(
                f"need proj_dim >= 1, adapt_after >= 0 and buffer_size >= 2, got "
                f"{self.proj_dim}, {self.adapt_after}, {self.buffer_size}"
            )
        if not (self.alpha >= 0 and self.thompson_v >= 0 and self.drift_threshold > 0):
            raise DeviceError("need alpha >= 0, thompson_v >= 0 and drift_threshold > 0")


@dataclass(frozen=True)
class HeadFit:
    """What ``fit_head`` did: head fit time, total calibration time, what it built."""

    labels: int
    classes: list[int]
    head_seconds: float
    seconds: float  # embedding + head + projection + drift reference + bandit warm start
    proj_dim: int
    drift_reference: int  # 0: too few labels for a drift reference (no detection)


@dataclass
class AdaptationEvent:
    """One drift response, from the alarm to the swap (steps count decisions)."""

    alarm_step: int
    start_step: int
    mode: str  # "adapt" (encoder trained) or "refit"
    buffer_windows: int
    status: str = "running"  # swapped | failed: ... | finished after the stream ended
    note: str = ""
    swap_step: int | None = None
    decisions_during: int | None = None  # decisions made while the job ran
    train_steps: int = 0
    loss_before: float | None = None
    loss_after: float | None = None
    train_seconds: float | None = None
    job_seconds: float | None = None  # the background job, start to ready
    wall_seconds: float | None = None  # launch to swap
    swap_ms: float | None = None  # the catch-up on the decision thread
    catch_up: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
