"""Which nodes train in a round when only a fraction does: the same seed and round draw
the same clients in every run, whatever ids the nodes got, and every client equally
often."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common import ndarrays_to_parameters
from strategy_results import client_manager, plain_strategy

from common.messages import PARTITION_KEY, ROLE_RECORD
from common.privacy.accountant import RdpPrivacyAccountant
from server.node_roles import NodeRoles, sample_nodes


def _run_ids(rng: np.random.Generator, n: int) -> dict[int, int]:
    """A simulated run's nodes: random 63-bit ids, partition i for the i-th node."""
    ids = rng.choice(2**62, size=n, replace=False) + 1
    return {int(node): part for part, node in enumerate(ids)}


def test_the_same_seed_and_round_draw_the_same_partitions_in_every_run() -> None:
    rng = np.random.default_rng(0)
    run_a, run_b = _run_ids(rng, 21), _run_ids(rng, 21)
    for rnd in range(1, 8):
        picked_a = {run_a[n] for n in sample_nodes(list(run_a), 3, 5, rnd, run_a)}
        nodes_b = list(run_b)[::-1]  # the order nodes are listed in does not matter either
        picked_b = {run_b[n] for n in sample_nodes(nodes_b, 3, 5, rnd, run_b)}
        assert picked_a == picked_b and len(picked_a) == 3


def test_rounds_and_seeds_draw_differently() -> None:
    nodes = list(range(1, 11))
    by_round = {tuple(sample_nodes(nodes, 3, 0, rnd, {})) for rnd in range(1, 11)}
    assert len(by_round) > 5
    by_seed = {tuple(sample_nodes(nodes, 3, seed, 1, {})) for seed in range(10)}
    assert len(by_seed) > 5
    assert sample_nodes(nodes, 0, 0, 1, {}) == []
    assert sorted(sample_nodes(nodes, 10, 0, 1, {})) == nodes


def test_every_client_is_drawn_equally_often() -> None:
    # 3 of 10 in each of 4,000 rounds: each client about 1,200 times (binomial s.d. 29).
    counts = np.zeros(11)
    for rnd in range(1, 4001):
        picked = sample_nodes(list(range(1, 11)), 3, 7, rnd, {})
        assert len(set(picked)) == 3
        counts[picked] += 1
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1200) < 4 * 29)


def test_the_strategy_samples_from_the_seed_and_the_partitions() -> None:
    init = [np.zeros(3, dtype=np.float32)]

    def sampled(seed: int, partitions: dict[int, int], rnd: int = 1) -> list[int]:
        s = plain_strategy(init)
        s.fraction_fit = 0.3
        s.train_config["seed"] = seed
        s.roles = NodeRoles({})
        s.roles.partitions.update(partitions)
        got = s.configure_fit(rnd, ndarrays_to_parameters(init), client_manager(10))
        assert s.outcome.clients_sampled == len(got) == 3
        return sorted(int(proxy.cid) for proxy, _ in got)

    assert sampled(1, {}) == sampled(1, {})  # Flower's own sampler would differ here
    assert sampled(1, {}) == sorted(sample_nodes(list(range(1, 11)), 3, 1, 1, {}))
    # nodes 1..10 holding partitions 9..0: the same partitions train, under other ids
    reversed_ids = {n: 10 - n for n in range(1, 11)}
    assert sampled(1, reversed_ids) == sorted(11 - n for n in sampled(1, {}))


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_too_few_trainers_sample_nobody(fraction: float) -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = plain_strategy(init)
    s.fraction_fit = fraction
    s.roles = NodeRoles({})
    s.roles.roles.update({n: "evaluate" for n in range(2, 11)})  # one trainer left
    assert s.configure_fit(1, ndarrays_to_parameters(init), client_manager(10)) == []


def test_under_dp_noise_the_draw_is_not_reproducible_from_the_seed() -> None:
    """The accountant credits sampling only while nobody can tell who was sampled."""
    init = [np.zeros(3, dtype=np.float32)]
    draws = set()
    for _ in range(8):
        s = plain_strategy(init)
        s.fraction_fit = 0.3
        s.accountant = RdpPrivacyAccountant(noise_multiplier=1.0, delta=1e-5)
        got = s.configure_fit(1, ndarrays_to_parameters(init), client_manager(10))
        draws.add(tuple(sorted(int(proxy.cid) for proxy, _ in got)))
    assert len(draws) > 1  # 8 draws of 3 of 10 (120 subsets) all equal: p < 1e-14


class _AnsweringGrid:
    """Every node answers the role question as a trainer claiming partition 0."""

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        answer = {"role": "train", PARTITION_KEY: 0}
        return [
            Message(RecordDict({ROLE_RECORD: ConfigRecord(answer)}), reply_to=m) for m in messages
        ]


@pytest.mark.parametrize("trusted", [True, False])
def test_a_device_naming_its_partition_is_believed_only_in_simulation(
    trusted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flwr.supercore.task_identity import TaskIdentity

    # Flower stamps messages with the current task; this test is its own small task.
    for key, value in (("task_id", 1), ("run_id", 1), ("node_id", 7)):
        monkeypatch.setattr(TaskIdentity, f"_{key}", value)
    roles = NodeRoles({}, trust_partitions=trusted)
    roles.ask(_AnsweringGrid(), [5, 6])  # type: ignore[arg-type]
    assert roles.roles == {5: "train", 6: "train"}
    assert roles.partitions == ({5: 0, 6: 0} if trusted else {})
