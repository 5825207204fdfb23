"""The server daemon and edge clients as real processes on loopback: TLS, node
authentication, SecAgg+, restarts and a client killed mid-training."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import Loopback, port_is_free


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[Loopback]:
    deployment = Loopback(tmp_path, devices=3, extra_keys=1)
    yield deployment
    deployment.close()


def _connected_nodes(server_log: str) -> set[str]:
    return {
        line.split("node ")[1].split()[0]
        for line in server_log.splitlines()
        if "client connected: node" in line
    }


def test_tls_authenticated_secagg_run_refuses_strangers(lb: Loopback) -> None:
    lb.start_server(2, register=3)
    lb.wait_for(lambda: "waiting for 3 devices" in lb.log("server"), 120, "registration")
    for i in range(3):
        lb.start_client(i)
    # A device whose key was never registered, and one that speaks plaintext to the TLS port.
    unregistered = lb.start_client(3, "--activation-grace", "15", name="unregistered")
    plaintext = lb.start_client(3, "--insecure", "--max-wait-time", "25", name="plaintext")

    assert lb.wait_server(420) == 0, lb.log("server")
    rows = lb.rounds()
    assert [r["round"] for r in rows] == [1, 2]
    assert all(r["completed"] and r["secure_aggregation"] for r in rows)
    assert all(r["clients_aggregated"] == 3 for r in rows)
    for name in ("encoder.pt", "summary.json", "config.json", "checkpoints/round-0002.pt"):
        assert (lb.out / name).is_file(), name
    assert json.loads((lb.out / "summary.json").read_text())["status"] == "completed"
    assert len(_connected_nodes(lb.log("server"))) == 3
    assert port_is_free(lb.port), "the SuperLink outlived the daemon"
    # The strangers never joined and gave up with an error.
    assert unregistered.wait(60) != 0, lb.log("unregistered")
    assert "not registered" in lb.log("unregistered")
    assert plaintext.wait(60) != 0, lb.log("plaintext")
    assert "plaintext client" in lb.log("plaintext")
    # Per-client state and timings stayed on each device.
    for i in range(3):
        state = lb.root / f"client{i}"
        assert list(state.glob("client-state-*.bin")), f"client{i} kept no local state"
        stages = [json.loads(x)["stage"] for x in (state / "timing.jsonl").read_text().splitlines()]
        assert stages.count("collect_masked_vectors") == 2


@pytest.mark.slow
def test_server_killed_mid_run_resumes_from_checkpoint(lb: Loopback) -> None:
    lb.start_server(4, register=3)
    lb.wait_for(lambda: "waiting for 3 devices" in lb.log("server"), 120, "registration")
    clients = [lb.start_client(i) for i in range(3)]
    lb.wait_for(lambda: len(lb.rounds()) >= 1, 300, "round 1")
    assert lb.server is not None
    lb.kill(lb.server, signal.SIGKILL)  # no chance to clean up: its children die with it
    lb.wait_for(lambda: port_is_free(lb.port), 30, "the SuperLink to go away", watch_server=False)
    lb.start_server(4, register=3)
    lb.wait_for(lambda: len(lb.rounds()) >= 2, 300, "round 2")
    lb.kill(lb.server, signal.SIGTERM)  # an orderly stop
    assert lb.server.returncode == 0, lb.log("server")
    assert port_is_free(lb.port), "the SuperLink outlived the daemon"
    record = json.loads((lb.root / "srv" / "daemon.json").read_text())
    assert record["status"] == "interrupted"
    lb.start_server(4, register=3)
    assert lb.wait_server(600) == 0, lb.log("server")
    rows = lb.rounds()
    assert [r["round"] for r in rows] == [1, 2, 3, 4]  # no round redone, none lost
    assert all(r["completed"] and r["clients_aggregated"] == 3 for r in rows)
    log = lb.log("server")
    assert log.count("resuming") >= 2 and "already registered" in log
    assert all(c.poll() is None for c in clients), "clients had to be restarted"
    # The resumed run is a new Flower run: each device took its SSL state from its disk.
    assert all("restored local state" in lb.log(f"client{i}") for i in range(3))


@pytest.mark.slow
def test_client_killed_mid_training_does_not_stall(lb: Loopback) -> None:
    lb.start_server(2, register=3, extra=["--set", "max-failed-rounds=2"])
    lb.wait_for(lambda: "waiting for 3 devices" in lb.log("server"), 120, "registration")
    victims = [lb.start_client(i) for i in range(3)]
    node_log = lb.root / "client2" / "supernode.log"

    def training_message_received() -> bool:
        # Round 1 sends set-up, share-keys, then the training message (masked-vector stage).
        return node_log.exists() and node_log.read_text().count("Receiving: train message") >= 3

    lb.wait_for(training_message_received, 300, "client 2 to receive its training message")
    lb.kill(victims[2], signal.SIGKILL)
    assert lb.wait_server(600) in (0, 3), lb.log("server")
    rows = lb.rounds()
    assert [r["round"] for r in rows] == [1, 2]
    # Round 1: SecAgg+ threshold 2 of 3 shares, so the two survivors complete it.
    assert rows[0]["completed"] and rows[0]["clients_aggregated"] == 2
    # Round 2: two devices are not enough for SecAgg+: reported, not stalled.
    assert not rows[1]["completed"] and "only 2 clients" in str(rows[1]["reason"])


@pytest.mark.slow
def test_restarted_client_keeps_its_local_state(lb: Loopback) -> None:
    lb.start_server(3, register=3)
    lb.wait_for(lambda: "waiting for 3 devices" in lb.log("server"), 120, "registration")
    clients = [lb.start_client(i) for i in range(3)]
    lb.wait_for(lambda: len(lb.rounds()) >= 1, 300, "round 1")
    state = lb.root / "client0"
    saved = list(state.glob("client-state-*.bin"))
    assert saved, "client 0 kept no local state after round 1"
    lb.kill(clients[0], signal.SIGKILL)  # a device crash: no clean-up
    restarted = lb.start_client(0)  # same key, same state-dir, same data file
    assert lb.wait_server(600) == 0, lb.log("server")
    rows = lb.rounds()
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert rows[0]["completed"] and rows[-1]["completed"] and rows[-1]["clients_aggregated"] == 3
    # The new process trained from the state its predecessor left on disk.
    assert "restored local state" in lb.log("client0"), lb.log("client0")[-3000:]
    assert restarted.poll() is None or restarted.returncode == 0
