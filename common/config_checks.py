"""The checks of a ``RunConfig`` that need more than the config: the clients of a round
(SecAgg+ limits) or the registries of methods, algorithms and data sets."""

from __future__ import annotations

from common.config import RunConfig
from common.config_values import ConfigError
from common.secagg_params import INT64_LIMIT, check_threshold


def check_secagg_cohort(cfg: RunConfig, clients_per_round: int) -> None:
    """SecAgg+ needs 3 clients, a sum that does not wrap, and shares that fit the round."""
    if not cfg.secure_aggregation:
        return
    if clients_per_round < 3:
        raise ConfigError(
            f"secure aggregation needs at least 3 clients per round, got {clients_per_round} "
            "(raise num-clients or fraction-train, or switch secure-aggregation off)",
            "num-clients",
        )
    _check_modulus(cfg, clients_per_round)
    shares, threshold = cfg.secagg_shares(clients_per_round)
    if shares > clients_per_round:
        raise ConfigError(
            f"num-shares ({shares}) exceeds the clients sampled per round ({clients_per_round})",
            "num-shares",
        )
    check_threshold(shares, threshold)


def _check_modulus(cfg: RunConfig, clients_per_round: int) -> None:
    """The quantized sum must fit the modulus, and the server's int64 sum the modulus."""
    modulus = cfg.secagg_modulus(clients_per_round)
    top = clients_per_round * cfg.quantization_range  # every client at its top level
    if top >= modulus:
        limit = (modulus - 1) // cfg.quantization_range
        raise ConfigError(
            f"{clients_per_round} clients per round do not fit modulus-range {modulus} at "
            f"quantization-range {cfg.quantization_range} (at most {limit}): the SecAgg+ "
            "sum would wrap around silently; set modulus-range 0 (auto) or raise it",
            "modulus-range",
        )
    if clients_per_round * modulus >= INT64_LIMIT:
        raise ConfigError(
            f"{clients_per_round} clients per round at modulus-range {modulus} overflow "
            "the server's 64-bit sum of masked vectors; lower quantization-range",
            "quantization-range",
        )


def check_names(cfg: RunConfig) -> None:
    """Refuse unknown method, fed-algorithm, data set and partition names."""
    from common.data.partition import SCHEMES
    from common.data.registry import DATASETS, NPZ_PREFIX
    from common.fedalgo.registry import FED_ALGORITHMS
    from common.ssl.registry import METHODS

    if cfg.method not in METHODS:
        raise ConfigError(
            f"method: unknown SSL method {cfg.method!r}; choose one of {', '.join(METHODS)}",
            "method",
        )
    if cfg.fed_algorithm not in FED_ALGORITHMS:
        raise ConfigError(
            f"fed-algorithm: unknown federated algorithm {cfg.fed_algorithm!r}; "
            f"choose one of {', '.join(FED_ALGORITHMS)}",
            "fed-algorithm",
        )
    if cfg.dataset not in DATASETS and not cfg.dataset.startswith(NPZ_PREFIX):
        raise ConfigError(
            f"dataset: unknown data set {cfg.dataset!r}; choose one of "
            f"{', '.join(DATASETS)} or npz:PATH",
            "dataset",
        )
    scheme = cfg.partition.split(":", 1)[0]
    if cfg.partition != "auto" and scheme not in {s.split(":")[0] for s in SCHEMES}:
        raise ConfigError(
            f"partition: unknown scheme {cfg.partition!r}; choose auto, natural, iid or "
            "dirichlet:ALPHA",
            "partition",
        )
