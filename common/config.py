"""One run's configuration: flat kebab-case keys, typed, validated before round 1.

The same keys appear in ``[tool.flwr.app.config]`` (the Flower way), as
``fedssl simulate`` options, and in every training instruction the server sends,
so a client never has to guess which hyper-parameters the server meant.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

Scalar = bool | int | float | str

# The largest number of clients whose quantized sum fits SecAgg+'s modulus:
# beyond modulus/quantization the sum wraps around silently (DESIGN.md §4).
DEFAULT_QUANTIZATION_RANGE = 2**22
DEFAULT_MODULUS_RANGE = 2**32
LR_SCHEDULES = ("cosine", "constant")
DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def _key(name: str) -> str:
    return name.replace("_", "-")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a federated SSL run (defaults: the README's main job)."""

    dataset: str = "hapt"
    partition: str = "auto"  # natural when the data has client ids, else iid
    num_clients: int = 0  # 0: every natural client of the pretraining pool (HAPT: 21 users)
    method: str = "simclr"
    temperature: float = 0.5  # NT-Xent temperature (SimCLR); 0.5 beat 0.1 federated on HAPT
    fed_algorithm: str = "fedavg"  # client-side update rule: fedavg, fedema, fedu
    fedema_tau: float = 0.7  # FedEMA's autoscaler target: mu at a client's first blend
    fedu_threshold: float = 1.0  # FedU: keep the local predictor at this divergence or more
    server_learning_rate: float = 1.0  # global += server-lr * (momentum-averaged) mean delta
    server_momentum: float = 0.0  # FedAvgM (Hsu et al. 2019); 0 = plain FedAvg
    num_server_rounds: int = 15
    fraction_train: float = 1.0
    local_epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decays over the rounds to 10 % of learning-rate
    seed: int = 0
    device: str = "cpu"
    secure_aggregation: bool = True
    num_shares: int = 0  # 0: auto (see secagg_shares)
    reconstruction_threshold: int = 0  # 0: auto, a majority of num_shares
    secagg_timeout: float = 300.0
    clipping_range: float = 8.0
    quantization_range: int = DEFAULT_QUANTIZATION_RANGE
    modulus_range: int = DEFAULT_MODULUS_RANGE
    max_weight: float = 0.0  # 0: auto, the largest client's sample count
    max_failed_rounds: int = 0
    # Refuse an aggregate update larger than this times the global encoder's L2 norm
    # (a wrapped SecAgg+ sum or a poisoned round looks like that; 0 = no limit).
    # Healthy rounds on HAPT, digits and FMNIST move 0.01-0.05 of it.
    max_update_ratio: float = 1.0
    evaluate: bool = True  # linear probe on the server when it can read the data set
    out_dir: str = ""
    # Deployment: each device reads its own file (node config data-path); the server's
    # `dataset` then only fixes the input shape and the probe, and num-clients is the
    # number of devices to wait for.
    node_data: bool = False
    resume: bool = False  # continue the run in out-dir from its last good checkpoint
    # Central differential privacy (DP-FedAvg, McMahan et al. 2018; common/privacy):
    # clients clip their delta to L2 norm dp-clipping-norm and count equally; the server
    # adds Gaussian noise of std dp-noise-multiplier * dp-clipping-norm to the sum.
    dp_noise_multiplier: float = 0.0  # 0 = no noise (no privacy guarantee)
    dp_clipping_norm: float = 0.0  # 0 = no clipping; required (> 0) when there is noise
    dp_delta: float = 1e-5  # the delta at which epsilon is reported

    # ---- conversions -------------------------------------------------------------

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> RunConfig:
        """Build from kebab-case keys (Flower run config or a training instruction).

        Unknown keys are refused, because a typo silently ignored is a wasted run.
        """
        known = {_key(f.name): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in flat.items():
            if key not in known:
                raise ConfigError(
                    f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}"
                )
            f = known[key]
            values[f.name] = _coerce(key, raw, cls.__dataclass_fields__[f.name].default)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_flat(self) -> dict[str, Scalar]:
        """Kebab-case dict of scalars, fit for a Flower ConfigRecord."""
        out: dict[str, Scalar] = {}
        for f in fields(self):
            out[_key(f.name)] = getattr(self, f.name)
        return out

    def replace(self, **changes: Any) -> RunConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    # ---- validation --------------------------------------------------------------

    def validate(self) -> None:
        """Refuse bad values before any round runs, naming the key."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{_key(f.name)} must be a finite number, got {value}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        positive_ints = ("num-server-rounds", "local-epochs", "batch-size")
        for key in positive_ints:
            if getattr(self, key.replace("-", "_")) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key.replace('-', '_'))}")
        if self.num_clients < 0:
            raise ConfigError(
                f"num-clients must be >= 0 (0 = all natural clients), got {self.num_clients}"
            )
        if not 0.0 < self.fraction_train <= 1.0:
            raise ConfigError(f"fraction-train must be in (0, 1], got {self.fraction_train}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(
                f"learning-rate must be a positive finite number, got {self.learning_rate}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.max_update_ratio < 0:
            raise ConfigError(
                f"max-update-ratio must be >= 0 (0 = no limit), got {self.max_update_ratio}"
            )
        if self.max_failed_rounds < 0:
            raise ConfigError(f"max-failed-rounds must be >= 0, got {self.max_failed_rounds}")
        if self.secagg_timeout <= 0:
            raise ConfigError(f"secagg-timeout must be > 0 seconds, got {self.secagg_timeout}")
        if self.clipping_range <= 0:
            raise ConfigError(f"clipping-range must be > 0, got {self.clipping_range}")
        if self.quantization_range <= 0 or self.modulus_range <= self.quantization_range:
            raise ConfigError("modulus-range must be greater than quantization-range (both > 0)")
        if bin(self.modulus_range).count("1") != 1:
            raise ConfigError(f"modulus-range must be a power of 2, got {self.modulus_range}")
        if self.num_shares and self.num_shares <= 2:
            raise ConfigError(f"num-shares must be > 2 (or 0 for auto), got {self.num_shares}")
        if self.reconstruction_threshold < 0 or self.reconstruction_threshold == 1:
            raise ConfigError(
                "reconstruction-threshold must be >= 2 (or 0 for auto), "
                f"got {self.reconstruction_threshold}"
            )
        if self.num_shares and self.reconstruction_threshold:
            _check_threshold(self.num_shares, self.reconstruction_threshold)
        if self.node_data and self.num_clients < 3 and self.secure_aggregation:
            raise ConfigError(
                "num-clients must be >= 3 when devices bring their own data (node-data) "
                f"with secure aggregation, got {self.num_clients}"
            )
        if self.resume and not self.out_dir:
            raise ConfigError("resume needs out-dir: the folder of the run to continue")
        if self.max_weight < 0:
            raise ConfigError(f"max-weight must be >= 0 (0 = auto), got {self.max_weight}")
        if not 0.0 < self.fedema_tau <= 1.0:
            raise ConfigError(f"fedema-tau must be in (0, 1], got {self.fedema_tau}")
        if self.fedu_threshold < 0:
            raise ConfigError(f"fedu-threshold must be >= 0, got {self.fedu_threshold}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.server_learning_rate <= 0:
            raise ConfigError(f"server-learning-rate must be > 0, got {self.server_learning_rate}")
        if not 0.0 <= self.server_momentum < 1.0:
            raise ConfigError(f"server-momentum must be in [0, 1), got {self.server_momentum}")
        self._validate_dp()

    @property
    def dp_clipping(self) -> bool:
        """Clients clip their delta and count equally (with or without noise)."""
        return self.dp_clipping_norm > 0

    @property
    def dp_noise(self) -> bool:
        """The server noises the aggregate: a differential privacy guarantee is claimed."""
        return self.dp_noise_multiplier > 0

    def _validate_dp(self) -> None:
        if self.dp_noise_multiplier < 0:
            raise ConfigError(
                f"dp-noise-multiplier must be >= 0 (0 = off), got {self.dp_noise_multiplier}"
            )
        if self.dp_clipping_norm < 0:
            raise ConfigError(
                f"dp-clipping-norm must be >= 0 (0 = off), got {self.dp_clipping_norm}"
            )
        if self.dp_noise and not self.dp_clipping:
            raise ConfigError(
                "dp-clipping-norm must be > 0 when dp-noise-multiplier is set: the noise is "
                "calibrated to the clipping norm"
            )
        if not 0.0 < self.dp_delta < 1.0:
            raise ConfigError(f"dp-delta must be in (0, 1), got {self.dp_delta}")
        if (
            self.dp_clipping
            and self.secure_aggregation
            and self.dp_clipping_norm > self.clipping_range
        ):
            # Every client then counts with weight 1 in SecAgg+, and no coordinate of a
            # delta of L2 norm <= C exceeds C: C <= clipping-range keeps SecAgg+ from
            # clipping (and so changing) any update silently.
            raise ConfigError(
                f"dp-clipping-norm ({self.dp_clipping_norm}) must be <= clipping-range "
                f"({self.clipping_range}) under secure aggregation"
            )

    def validate_for_clients(self, clients_per_round: int) -> None:
        """Checks that need the number of clients sampled per round."""
        if not self.secure_aggregation:
            return
        if clients_per_round < 3:
            raise ConfigError(
                f"secure aggregation needs at least 3 clients per round, got {clients_per_round} "
                "(raise num-clients or fraction-train, or switch secure-aggregation off)"
            )
        limit = self.modulus_range // self.quantization_range
        if clients_per_round > limit:
            raise ConfigError(
                f"{clients_per_round} clients per round exceed modulus-range/quantization-range "
                f"= {limit}: the SecAgg+ sum would wrap around silently; raise modulus-range"
            )
        shares, threshold = self.secagg_shares(clients_per_round)
        if shares > clients_per_round:
            raise ConfigError(
                f"num-shares ({shares}) exceeds the clients sampled per round ({clients_per_round})"
            )
        _check_threshold(shares, threshold)

    def check_names(self) -> None:
        """Refuse unknown method, fed-algorithm, data set and partition names (imports the
        registries)."""
        from common.data.partition import SCHEMES
        from common.data.registry import DATASETS, NPZ_PREFIX
        from common.fedalgo.registry import FED_ALGORITHMS
        from common.ssl.registry import METHODS

        if self.method not in METHODS:
            raise ConfigError(
                f"method: unknown SSL method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.fed_algorithm not in FED_ALGORITHMS:
            raise ConfigError(
                f"fed-algorithm: unknown federated algorithm {self.fed_algorithm!r}; "
                f"choose one of {', '.join(FED_ALGORITHMS)}"
            )
        if self.dataset not in DATASETS and not self.dataset.startswith(NPZ_PREFIX):
            raise ConfigError(
                f"dataset: unknown data set {self.dataset!r}; choose one of "
                f"{', '.join(DATASETS)} or npz:PATH"
            )
        scheme = self.partition.split(":", 1)[0]
        if self.partition != "auto" and scheme not in {s.split(":")[0] for s in SCHEMES}:
            raise ConfigError(
                f"partition: unknown scheme {self.partition!r}; choose auto, natural, iid or dirichlet:ALPHA"
            )

    def secagg_shares(self, clients_per_round: int) -> tuple[int, int]:
        """(num_shares, reconstruction_threshold), resolving the automatic defaults.

        Auto picks a neighbourhood of about 2·log2(n)+1 clients (SecAgg+, Bell et al.
        2020: logarithmic neighbourhoods keep the privacy of full SecAgg at a fraction of
        its cost) and a majority threshold, so a round survives losing up to a minority
        of each neighbourhood.
        """
        n = clients_per_round
        shares = self.num_shares or min(n, max(3, 2 * math.ceil(math.log2(max(n, 2))) + 1))
        threshold = self.reconstruction_threshold or max(2, shares // 2 + 1)
        if not self.reconstruction_threshold and threshold >= shares:
            threshold = shares - 1
        return shares, threshold

    def round_learning_rate(self, server_round: int) -> float:
        """The local learning rate in ``server_round`` (1-based) under ``lr-schedule``.

        Cosine decay across rounds, to a floor of 10 %: the server fixes the schedule, so
        every client uses the same rate in the same round.
        """
        if self.lr_schedule == "constant":
            return self.learning_rate
        progress = min(max(server_round - 1, 0) / max(self.num_server_rounds - 1, 1), 1.0)
        floor = 0.1
        return self.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    def clients_per_round(self, num_available: int) -> int:
        return max(1, int(self.fraction_train * num_available))


def parse_set_items(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` options (repeatable) as raw flat config entries."""
    extra: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        extra[key.strip()] = value.strip()
    return extra


def _check_threshold(shares: int, threshold: int) -> None:
    if threshold >= shares:
        raise ConfigError(
            f"reconstruction-threshold ({threshold}) must be less than num-shares ({shares})"
        )
    if threshold <= shares // 2:
        # With a minority threshold a server could collect enough shares of both a client's
        # self-mask seed and its pairwise key from different neighbours and unmask it alone.
        raise ConfigError(
            f"reconstruction-threshold ({threshold}) must be a majority of num-shares ({shares}): "
            f"at least {shares // 2 + 1}"
        )


def _coerce(key: str, raw: Any, default: Any) -> Any:
    """Convert a raw value (possibly a string from a CLI) to the default's type."""
    try:
        if isinstance(default, bool):
            if isinstance(raw, str):
                low = raw.strip().lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(raw)
            return bool(raw)
        if isinstance(default, int):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        return str(raw)
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise ConfigError(f"{key} must be a {kind}, got {raw!r}") from None
