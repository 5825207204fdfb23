"""One run's configuration: flat kebab-case keys, typed, validated before round 1.

Each key is declared once, on its field below (help, flag, bound: ``common.option``).
The same keys are ``[tool.flwr.app.config]`` (the Flower way), the run commands'
flags (``common.run_options``) and the README's option table.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from common.config_values import ConfigError, Scalar, coerce, config_key
from common.option import (
    FRACTION,
    HALF_OPEN_UNIT,
    NON_NEGATIVE,
    OPEN_UNIT,
    POSITIVE,
    Bound,
    Option,
    option,
)
from common.secagg_params import (
    DEFAULT_QUANTIZATION_RANGE,
    check_threshold,
    resolve_modulus,
    resolve_shares,
)
from common.server_opt import SERVER_OPTIMIZERS

LR_SCHEDULES = ("constant", "cosine")
DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")
SHAPE_PATTERN = re.compile(r"\d+(x\d+)*")


def _shares_bound() -> Bound:
    return Bound("must be > 2 (or 0 for auto)", lambda v: v == 0 or v > 2)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a federated SSL run (defaults: the README's main job)."""

    dataset: str = option(
        "hapt",
        "hapt, digits (sklearn 8x8), fmnist (Debian dataset-fashion-mnist), npz:PATH",
        flag="--dataset",
        client=True,
    )
    partition: str = option(
        "auto",
        "natural (by the data's client ids), iid, dirichlet:ALPHA (each class split by Dirichlet(ALPHA) shares, smaller = more skew; re-drawn until every client holds 2 samples); auto = natural if the data has client ids, else iid",
        flag="--partition",
        client=True,
    )
    num_clients: int = option(
        0,
        "number of clients; 0 = one per natural client (HAPT: 21), otherwise 10. In deployment: the devices to wait for before round 1 (0 = the registered keys)",
        flag="--clients",
        bound=Bound("must be >= 0 (0 = all natural clients)", lambda v: v >= 0),
        client=True,
    )
    method: str = option(
        "simclr",
        "SSL method: simclr, byol, simsiam, fedx (SimCLR distilled from the round's global model, FedX)",
        flag="--method",
        client=True,
    )
    temperature: float = option(
        0.5,
        "NT-Xent temperature (SimCLR; FedX uses it for all its terms); 0.5 beat 0.1 federated on HAPT",
        bound=POSITIVE,
        client=True,
    )
    augment_strength: float = option(
        1.0,
        "scales every augmentation strength of the data's modality for the pretext task (sensor: crop, rotation, gain, jitter, time mask; image: crop, brightness, contrast, blur, noise); 1 = the calibrated defaults",
        bound=POSITIVE,
        client=True,
    )
    fed_algorithm: str = option(
        "fedavg",
        "client-side update rule: fedavg (start from the global model), fedema (FedEMA: blend the global model into the local one, more of the local the further the client drifted), fedu (FedU: global encoder, local predictor while the client diverges); all run on the client, so SecAgg+ is unchanged. fedema and fedu also share the predictor (BYOL, SimSiam)",
        flag="--fed-algorithm",
        client=True,
    )
    fedema_tau: float = option(
        0.7,
        "FedEMA's autoscaler target (the paper's value): the blend weight of the local model at a client's first blend; later ones scale with its divergence, capped at 1",
        bound=FRACTION,
        client=True,
    )
    fedu_threshold: float = option(
        1.0,
        "FedU keeps the local predictor while the L2 divergence of the online encoder and projector from the global ones is at least this (measured: 1.4-2.2 in round 2, 0.4-1.0 once training settles, at learning-rate 0.001 and 2 local epochs)",
        bound=NON_NEGATIVE,
        client=True,
    )
    server_optimizer: str = option(
        "fedavg",
        "the server's step on the mean delta (the unmasked sum only, so SecAgg+ is unchanged): fedavg (global += lr * v, v = momentum * v + delta: FedAvgM with momentum), fedadam, fedyogi (Reddi et al. 2021)",
        choices=tuple(SERVER_OPTIMIZERS),
    )
    server_learning_rate: float = option(
        0.0,
        "the server optimizer's step size in round 1; 0 = its default (fedavg 2, fedadam and fedyogi 0.01). fedavg's 2 makes up for averaging many clients' deltas; with a few clients a round use 1",
        bound=NON_NEGATIVE,
    )
    server_learning_rate_final: float = option(
        0.0,
        "the server step in the last round, reached by a cosine from server-learning-rate in round 1; 0 = the optimizer's default (fedavg 1: plain FedAvg by the end; fedadam, fedyogi: server-learning-rate throughout)",
        bound=NON_NEGATIVE,
    )
    server_momentum: float = option(
        0.0,
        "fedavg: v = momentum * v + mean delta (FedAvgM, Hsu et al. 2019)",
        bound=HALF_OPEN_UNIT,
    )
    server_beta1: float = option(
        0.9, "fedadam, fedyogi: decay of the first moment", bound=HALF_OPEN_UNIT
    )
    server_beta2: float = option(
        0.99, "fedadam, fedyogi: decay of the second moment", bound=HALF_OPEN_UNIT
    )
    server_tau: float = option(
        1e-3,
        "fedadam, fedyogi: adaptivity (added to the root of the second moment)",
        bound=POSITIVE,
    )
    num_server_rounds: int = option(
        6, "server rounds", flag="--rounds", bound=POSITIVE, client=True
    )
    fraction_train: float = option(
        1.0,
        "fraction of clients sampled per round (drawn from seed and the round)",
        flag="--fraction-train",
        bound=FRACTION,
    )
    local_epochs: int = option(
        10, "local epochs per round", flag="--local-epochs", bound=POSITIVE, client=True
    )
    local_steps: int = option(
        0,
        "local optimizer steps per round; 0 = local-epochs whole epochs, otherwise a round stops after this many steps (within local-epochs)",
        bound=NON_NEGATIVE,
        client=True,
    )
    batch_size: int = option(
        64, "local batch size", flag="--batch-size", bound=POSITIVE, client=True
    )
    learning_rate: float = option(
        1e-3, "local Adam learning rate", flag="--lr", bound=POSITIVE, client=True
    )
    lr_schedule: str = option(
        "constant",
        "local learning rate across rounds: constant, or cosine (decays to 10 %)",
        flag="--lr-schedule",
        choices=LR_SCHEDULES,
        client=True,
    )
    lr_warmup_rounds: int = option(
        0,
        "the first N rounds ramp the local learning rate up linearly: round r <= N trains at r/(N+1) of it (then lr-schedule applies); 0 = no warmup",
        bound=NON_NEGATIVE,
        client=True,
    )
    keep_optimizer_state: bool = option(
        True,
        "a client keeps its Adam moments between the rounds it trains in; off = a fresh optimizer each round, for large cohorts: each client trains rarely, and a simulation holds every client's state in the server process (HAPT: 1.5 MB a client)",
        client=True,
    )
    seed: int = option(
        0,
        "seeds the partition, the initial model, every client's training and, with fraction-train < 1, which clients train in each round",
        flag="--seed",
        bound=NON_NEGATIVE,
        client=True,
    )
    device: str = option(
        "cpu",
        "where clients train: cpu, cuda, cuda:N, auto",
        flag="--device",
        bound=Bound(
            "must be cpu, cuda, cuda:N or auto", lambda v: bool(DEVICE_PATTERN.fullmatch(v))
        ),
        client=True,
    )
    secure_aggregation: bool = option(
        True,
        "SecAgg+; off = plain FedAvg, where the server sees each update (comparison only)",
        flag="--no-secure-aggregation",
        flag_help="plain FedAvg, for comparison only: the server then sees each client's update",
        client=True,
    )
    num_shares: int = option(
        0,
        "SecAgg+ neighbourhood size; 0 = auto (about 2*log2(n)+1)",
        flag="--num-shares",
        bound=_shares_bound(),
    )
    reconstruction_threshold: int = option(
        0,
        "SecAgg+ shares needed to unmask; 0 = auto (a majority)",
        flag="--reconstruction-threshold",
        bound=Bound("must be >= 2 (or 0 for auto)", lambda v: v == 0 or v >= 2),
    )
    secagg_timeout: float = option(
        300.0,
        "seconds each SecAgg+ stage waits for clients",
        flag="--secagg-timeout",
        bound=Bound("must be > 0 seconds", lambda v: v > 0),
    )
    clipping_range: float = option(
        8.0,
        "SecAgg+ clips values outside +/- this (clients count how many)",
        bound=POSITIVE,
        client=True,
    )
    quantization_range: int = option(
        DEFAULT_QUANTIZATION_RANGE,
        "SecAgg+ quantization levels",
        bound=Bound(
            "must be in 1 .. 2^31 - 1 (Flower quantizes to int32)", lambda v: 0 < v < 2**31
        ),
    )
    modulus_range: int = option(
        0,
        "SecAgg+ modulus (a power of 2); 0 = auto: the smallest power of 2 from 2^32 up that holds the quantized sum of the round's clients, so the sum never wraps and quantization keeps its levels at any cohort; an explicit modulus holds fewer than modulus/quantization clients",
        bound=Bound("must be 0 (auto) or a power of 2", lambda v: v == 0 or bin(v).count("1") == 1),
    )
    max_weight: float = option(
        0.0,
        "SecAgg+ weight normaliser; 0 = the largest client's sample count (deployment: 4096; a device with more samples is weighted as max-weight)",
        bound=Bound("must be >= 0 (0 = auto)", lambda v: v >= 0),
        client=True,
    )
    max_failed_rounds: int = option(
        0,
        "failed rounds tolerated before the run counts as failed",
        flag="--max-failed-rounds",
        bound=NON_NEGATIVE,
    )
    # Healthy rounds on HAPT, digits and FMNIST move 0.01-0.05 of the global norm.
    max_update_ratio: float = option(
        1.0,
        "refuse an aggregate whose L2 norm exceeds this times the global encoder's (a wrapped or poisoned sum); 0 = no limit",
        bound=Bound("must be >= 0 (0 = no limit)", lambda v: v >= 0),
    )
    evaluate: bool = option(
        True,
        "final linear probe when the server can read the data set",
        flag="--no-evaluate",
        flag_help="skip the final linear probe",
    )
    evaluate_every: int = option(
        1,
        "federated evaluation: every this many rounds (and after the last) the server sends the "
        "global encoder to every device, which stores it and evaluates it on its own data; 0 = off",
        flag="--evaluate-every",
        bound=NON_NEGATIVE,
    )
    eval_labels_per_class: int = option(
        10,
        "federated evaluation: labeled windows per class a device fits its personal head on "
        "(the rest of its labeled windows test it)",
        bound=POSITIVE,
    )
    eval_classes: int = option(
        0,
        "federated evaluation: labels 0..N-1 are evaluated (others are ignored); 0 = the data "
        "set's (HAPT: the 6 basic activities; otherwise all)",
        bound=NON_NEGATIVE,
    )
    eval_clients: int = option(
        -1,
        "simulation: evaluation-only clients, which evaluate every delivered encoder but never "
        "train; -1 = auto (the data set's held-out clients: HAPT's users 22-30), 0 = none",
        bound=Bound("must be >= -1 (-1 = auto)", lambda v: v >= -1),
    )
    input_shape: str = option(
        "",
        "the shape of one sample, e.g. 6x128 or 1x28x28; empty = from the data set. Lets a deployment server run without any data (with evaluate off)",
        bound=Bound(
            "must be like 6x128 (or empty)", lambda v: v == "" or bool(SHAPE_PATTERN.fullmatch(v))
        ),
    )
    out_dir: str = option(
        "",
        "absolute output folder (each command's --out; empty under `flwr run`: ~/fedssl-runs/...)",
        internal=True,
    )
    node_data: bool = option(
        False,
        "each device reads its own file (node config data-path); fedssl server sets it",
        internal=True,
    )
    resume: bool = option(
        False,
        "continue the run in out-dir from its last good checkpoint; fedssl server sets it when --out holds an unfinished run, fedssl simulate with --resume",
        internal=True,
    )
    # Central differential privacy (DP-FedAvg, McMahan et al. 2018; common/privacy).
    dp_noise_multiplier: float = option(
        0.0,
        "central DP: Gaussian noise std on the aggregate, in units of the clipping norm; 0 = off",
        flag="--dp-noise-multiplier",
        bound=Bound("must be >= 0 (0 = off)", lambda v: v >= 0),
    )
    dp_clipping_norm: float = option(
        0.0,
        "central DP: the L2 norm each client clips its delta to (needed with noise; at most clipping-range under SecAgg+); 0 = off",
        flag="--dp-clipping-norm",
        bound=Bound("must be >= 0 (0 = off)", lambda v: v >= 0),
        client=True,
    )
    dp_delta: float = option(
        1e-5,
        "central DP: the delta at which epsilon is reported",
        flag="--dp-delta",
        bound=OPEN_UNIT,
    )

    # ---- conversions -------------------------------------------------------------

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> RunConfig:
        """Build from kebab-case keys (Flower run config or a training instruction).

        Unknown keys are refused, because a typo silently ignored is a wasted run.
        """
        known = {config_key(f.name): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in flat.items():
            if key not in known:
                raise ConfigError(
                    f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}", key
                )
            f = known[key]
            values[f.name] = coerce(key, raw, f.default)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_flat(self) -> dict[str, Scalar]:
        """Kebab-case dict of scalars, fit for a Flower ConfigRecord."""
        return {config_key(f.name): getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> RunConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    # ---- validation --------------------------------------------------------------

    def validate(self) -> None:
        """Refuse bad values before any round runs, naming the key."""
        for f in fields(self):
            key, value, meta = config_key(f.name), getattr(self, f.name), run_option(f)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value}", key)
            if meta.choices and value not in meta.choices:
                raise ConfigError(
                    f"{key} must be one of {', '.join(meta.choices)}, got {value!r}", key
                )
            if meta.bound is not None and not meta.bound.holds(value):
                raise ConfigError(f"{key} {meta.bound.text}, got {value!r}", key)
        check_combinations(self)

    @property
    def dp_clipping(self) -> bool:
        """Clients clip their delta and count equally (with or without noise)."""
        return self.dp_clipping_norm > 0

    @property
    def dp_noise(self) -> bool:
        """The server noises the aggregate: a differential privacy guarantee is claimed."""
        return self.dp_noise_multiplier > 0

    def secagg_shares(self, clients_per_round: int) -> tuple[int, int]:
        """(num_shares, reconstruction_threshold) for a round, the automatic ones resolved."""
        return resolve_shares(self.num_shares, self.reconstruction_threshold, clients_per_round)

    def secagg_modulus(self, clients_per_round: int) -> int:
        """The SecAgg+ modulus for a round of ``clients_per_round``, auto resolved."""
        return resolve_modulus(self.modulus_range, self.quantization_range, clients_per_round)

    def round_learning_rate(self, server_round: int) -> float:
        """The local learning rate in ``server_round`` (1-based): ``lr-warmup-rounds`` of
        linear warmup, then ``lr-schedule``.

        Cosine decays across rounds to a floor of 10 %. The server fixes the schedule,
        so every client uses the same rate in the same round.
        """
        warmup = self.lr_warmup_rounds
        if server_round <= warmup:
            return self.learning_rate * server_round / (warmup + 1)
        if self.lr_schedule == "constant":
            return self.learning_rate
        progress = min(max(server_round - 1, 0) / max(self.num_server_rounds - 1, 1), 1.0)
        floor = 0.1
        return self.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    def clients_per_round(self, num_available: int) -> int:
        return max(1, int(self.fraction_train * num_available))

    def sample_shape(self) -> tuple[int, ...] | None:
        """``input-shape`` as a tuple; None when it is to come from the data set."""
        return tuple(int(d) for d in self.input_shape.split("x")) if self.input_shape else None


def check_combinations(cfg: RunConfig) -> None:
    """Keys that constrain each other; each error names the key to change."""
    if cfg.modulus_range and cfg.modulus_range <= cfg.quantization_range:
        raise ConfigError(
            "modulus-range must be greater than quantization-range (or 0 = auto)",
            "modulus-range",
        )
    if cfg.num_shares and cfg.reconstruction_threshold:
        check_threshold(cfg.num_shares, cfg.reconstruction_threshold)
    if cfg.node_data and cfg.num_clients < 3 and cfg.secure_aggregation:
        raise ConfigError(
            "num-clients must be >= 3 when devices bring their own data (node-data) "
            f"with secure aggregation, got {cfg.num_clients}",
            "num-clients",
        )
    if cfg.resume and not cfg.out_dir:
        raise ConfigError("resume needs out-dir: the folder of the run to continue", "resume")
    _check_dp(cfg)


def _check_dp(cfg: RunConfig) -> None:
    if cfg.dp_noise and not cfg.dp_clipping:
        raise ConfigError(
            "dp-clipping-norm must be > 0 when dp-noise-multiplier is set: the noise is "
            "calibrated to the clipping norm",
            "dp-clipping-norm",
        )
    if cfg.dp_clipping and cfg.secure_aggregation and cfg.dp_clipping_norm > cfg.clipping_range:
        # Every client then counts with weight 1 in SecAgg+, and no coordinate of a delta
        # of L2 norm <= C exceeds C: C <= clipping-range keeps SecAgg+ from clipping (and
        # so changing) any update silently.
        raise ConfigError(
            f"dp-clipping-norm ({cfg.dp_clipping_norm}) must be <= clipping-range "
            f"({cfg.clipping_range}) under secure aggregation",
            "dp-clipping-norm",
        )


def run_option(f: dataclasses.Field[Any]) -> Option:
    meta = f.metadata.get("option")
    assert isinstance(meta, Option), f"RunConfig.{f.name} is not declared with option()"
    return meta
