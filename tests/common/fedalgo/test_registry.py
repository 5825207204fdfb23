"""The fed-algorithm registry and config keys, and the one invariant SecAgg+ depends on: the
server's initial arrays and every client's delta have the same layout, for every algorithm
and every SSL method, in a client's first round and in a later, stateful one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from common.config import ConfigError, RunConfig
from common.config_checks import check_names
from common.fedalgo import FED_ALGORITHMS, FedAvg, FedEMA, FedU, build_fed_algorithm
from common.fedalgo.fedema import DEFAULT_TAU
from common.fedalgo.fedu import DEFAULT_THRESHOLD
from common.local_round import (
    build_model,
    encoder_state_from_arrays,
    initial_global_arrays,
    run_local_round,
    shared_keys,
)
from common.ssl import METHODS


def test_registry_names_and_unknown_names() -> None:
    assert FED_ALGORITHMS == {"fedavg": FedAvg, "fedema": FedEMA, "fedu": FedU}
    assert isinstance(build_fed_algorithm("fedema", tau=0.5), FedEMA)
    with pytest.raises(ValueError, match="fedavg, fedema, fedu"):
        build_fed_algorithm("fedprox")
    with pytest.raises(TypeError):
        build_fed_algorithm("fedavg", tau=0.5)


def test_config_keys_defaults_and_validation() -> None:
    cfg = RunConfig()
    assert (cfg.fed_algorithm, cfg.fedema_tau, cfg.fedu_threshold) == (
        "fedavg",
        DEFAULT_TAU,
        DEFAULT_THRESHOLD,
    )
    with pytest.raises(ConfigError, match="fed-algorithm"):
        check_names(RunConfig(fed_algorithm="fedprox"))
    with pytest.raises(ConfigError, match="fedema-tau"):
        RunConfig.from_flat({"fedema-tau": 0.0})
    with pytest.raises(ConfigError, match="fedu-threshold"):
        RunConfig.from_flat({"fedu-threshold": -0.1})
    check_names(RunConfig(fed_algorithm="fedu", method="simsiam"))


# Which submodules cross the network, per algorithm and method.
ONLINE = {"encoder", "projector"}
ALL = {"encoder", "projector", "predictor"}
EXPECTED = {
    ("fedavg", "simclr"): ONLINE,
    ("fedavg", "byol"): ONLINE,  # BYOL's own split: predictor (and target) stay local
    ("fedavg", "simsiam"): ALL,  # no target network: the predictor is part of the model
    ("fedema", "simclr"): ONLINE,
    ("fedema", "byol"): ALL,  # FedEMA blends the predictor too, so it is shared
    ("fedema", "simsiam"): ALL,
    ("fedu", "simclr"): ONLINE,  # no predictor: FedU is FedAvg here
    ("fedu", "byol"): ALL,  # FedU needs a global predictor to choose from
    ("fedu", "simsiam"): ALL,
    ("fedavg", "fedx"): ALL,  # FedX averages its whole net, predictor included
    ("fedema", "fedx"): ALL,
    ("fedu", "fedx"): ALL,
}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("algorithm", sorted(FED_ALGORITHMS))
def test_server_and_client_agree_on_the_shared_layout(algorithm: str, method: str) -> None:
    cfg = RunConfig(method=method, fed_algorithm=algorithm, local_epochs=1, batch_size=16)
    x = np.random.default_rng(0).normal(size=(32, 6, 32)).astype(np.float32)
    shape = x.shape[1:]
    server = initial_global_arrays(cfg, shape)  # what server/run.py starts from
    keys = shared_keys(cfg, build_model(cfg, shape)[0])
    assert {k.split(".", 1)[0] for k in keys} == EXPECTED[(algorithm, method)]
    assert not any(k.startswith("target_") for k in keys)  # BYOL's target never leaves

    layout = [a.shape for a in server]
    first = run_local_round(cfg, x, server, None, server_round=1, partition_id=0)
    glob2 = [g + d for g, d in zip(server, first.delta, strict=True)]  # one-client "FedAvg"
    second = run_local_round(cfg, x, glob2, first.state, server_round=2, partition_id=0)
    for res in (first, second):
        assert [d.shape for d in res.delta] == layout
        assert all(d.dtype == np.float32 and np.isfinite(d).all() for d in res.delta)
    # The client files every other key under its local state, and its saved shared weights
    # (FedEMA, FedU) under the server's names and order.
    blob = torch.load(io.BytesIO(second.state), weights_only=True)
    assert set(blob["local"]) == set(build_model(cfg, shape)[0].state_dict()) - set(keys)
    if blob["shared"] is not None:
        assert list(blob["shared"]) == keys
    # The server can still map the aggregate back to an encoder.
    enc, _, _ = encoder_state_from_arrays(cfg, shape, glob2)
    assert enc and all(
        v.shape == build_model(cfg, shape)[0].encoder.state_dict()[k].shape for k, v in enc.items()
    )


def test_state_saved_under_another_algorithm_is_discarded_not_misread() -> None:
    """BYOL's predictor is local under fedavg but shared under fedema: an old blob would put a
    stale predictor over the blended one, so the client starts afresh instead."""
    x = np.random.default_rng(0).normal(size=(32, 6, 32)).astype(np.float32)
    old = RunConfig(method="byol", local_epochs=1, batch_size=16)
    new = old.replace(fed_algorithm="fedema")
    first = run_local_round(
        old, x, initial_global_arrays(old, x.shape[1:]), None, server_round=1, partition_id=0
    )
    res = run_local_round(
        new, x, initial_global_arrays(new, x.shape[1:]), first.state, server_round=2, partition_id=0
    )
    assert res.local_metrics["state-discarded"] == 1 and "fedema-mu" not in res.local_metrics
    assert torch.load(io.BytesIO(res.state), weights_only=True)["fed-algorithm"] == "fedema"
