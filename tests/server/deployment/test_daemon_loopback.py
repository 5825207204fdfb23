"""The server daemon and edge clients as real processes on loopback: TLS, node
authentication, SecAgg+, the control-plane lock under attack, stopping, restarts and a
client killed mid-training."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attacks import (
    FORKED_TASK,
    REFUSED_ROUTES,
    CmdlineWatch,
    PeakRss,
    garbage,
    https_status,
    huge_body,
    idle_connections,
    node_auth_headers,
    outsider_cli,
    processes_mentioning,
    rss_mb,
    slow_client,
)
from bare_superlink import flwr, flwr_home
from foreign_app import markers, write_foreign_app
from loopback import Loopback, port_is_free

from client.state_lock import device_id as key_fingerprint
from server.deployment.certs import make_node_key
from server.deployment.proxy import ProxyError, find_nginx


def _have_nginx() -> bool:
    try:
        return bool(find_nginx())
    except ProxyError:
        return False


# `fedssl server` puts nginx in front of the SuperLink; CI installs it (.ci/run).
pytestmark = pytest.mark.skipif(
    not _have_nginx(), reason="nginx is not installed (apt-get install nginx-light)"
)


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


def test_only_the_device_api_faces_the_network_and_the_run_completes(lb: Loopback) -> None:
    """A real TLS + node-auth + SecAgg+ run (2 rounds, a server without data) while outsiders attack the public port: Flower's
    CLI with the CA certificate, raw requests with and without a registered device's
    signature, garbage, a huge body, a slow client, 400 idle connections. All refused,
    nothing foreign runs, the SuperLink's memory stays put, and the run completes."""
    watch = CmdlineWatch()
    # The server holds no data at all: the devices bring theirs, the shape is configured.
    no_data = ["--dataset", "npz:/nonexistent/server-has-no-data.npz", "--set", "input-shape=1x8x8"]
    lb.start_server(2, register=3, extra=no_data)
    lb.wait_for(lambda: "waiting for 3 devices" in lb.log("server"), 120, "registration")
    clients = [lb.start_client(i) for i in range(3)]
    # A device whose key was never registered, and one that speaks plaintext to the TLS port.
    # (A device never activated is refused for good at once, whatever the grace.)
    unregistered = lb.start_client(3, "--activation-grace", "900", name="unregistered")
    plaintext = lb.start_client(3, "--insecure", "--max-wait-time", "25", name="plaintext")
    lb.wait_for(lambda: "(3/3)" in lb.log("server"), 300, "three devices connected")
    link_pid = lb.superlink_pid()
    rss_before = rss_mb(link_pid)
    link_rss = PeakRss(link_pid)  # through the attacks below, while the SuperLink lives
    ca, markers_dir = lb.certs / "ca.crt", lb.root / "markers"
    foreign = write_foreign_app(lb.root / "foreign", markers_dir)
    sybil = lb.root / "sybil"
    sybil.mkdir()
    make_node_key(sybil, "sybil")
    run_id = json.loads((lb.root / "srv" / "daemon.json").read_text())["run-id"]
    node_id = next(iter(json.loads((lb.root / "srv" / "nodes.json").read_text()).values()))

    results = outsider_cli(
        lb.root / "outsider", lb.port, ca, run_id, node_id, foreign, sybil / "sybil.pub"
    )
    for name, (rc, out) in results.items():  # refused by the proxy, not by chance
        assert (rc != 0 or '"success": false' in out) and '"success": true' not in out, (name, out)
        assert "403" in out, (name, out)
    # A local user of the server host reaches the SuperLink's loopback port itself (Flower
    # 1.42 does not authenticate its Control API): the run is accepted, but fedssl's
    # SuperExec starts no ServerApp for a bundle the daemon did not submit.
    local = flwr_home(
        lb.root / "local-user", lb.superlink_address(), lb.root / "srv" / "loopback-tls" / "ca.crt"
    )
    rc, out = flwr(local, "run", str(foreign), "--format", "json")
    assert '"success": true' in out, out
    device_id = node_auth_headers(lb.keys[0])
    for path in REFUSED_ROUTES:
        for headers in ({}, device_id):
            for method in ("POST", "GET"):
                assert https_status(lb.port, ca, method, path, b"{}", headers) == 403, (
                    path,
                    headers,
                )
    assert huge_body(lb.port, ca) in (0, 413)
    # the SuperLink lived through the huge body (its peak RSS is checked below)
    assert Path(f"/proc/{link_pid}").exists(), lb.log("server")
    noise = [threading.Thread(target=garbage, args=(lb.port,))]
    slow: list[float] = []
    idle: list[int] = []
    noise.append(threading.Thread(target=lambda: slow.append(slow_client(lb.port, ca))))
    noise.append(threading.Thread(target=lambda: idle.append(idle_connections(lb.port))))
    for t in noise:
        t.start()
    for t in noise:
        t.join(120)
    assert slow and slow[0] < 30, slow  # the server hung up on the slow client
    assert idle and idle[0] >= 390, idle  # and on the idle connections
    # None of it reached the SuperLink (a 300 MB body once took it from 296 to 831 MB):
    # its memory stays what a round costs, and nginx's stays small.
    link_rss.stop()
    # sampled through the huge body at least (the run may end during the noise)
    assert link_rss.samples > 0 and link_rss.peak_mb < 400, (rss_before, link_rss.peak_mb)
    nginx = [int(p.split(":")[0]) for p in processes_mentioning("nginx: ")]
    assert sum(PeakRss(pid).stop().peak_mb for pid in nginx) < 100

    assert lb.wait_server(420) == 0, lb.log("server")
    watch.close()
    rows = lb.rounds()
    assert [r["round"] for r in rows] == [1, 2]
    assert all(r["completed"] and r["secure_aggregation"] for r in rows)
    assert all(r["clients_aggregated"] == 3 for r in rows)
    for name in ("encoder.pt", "summary.json", "config.json", "checkpoints/round-0002.pt"):
        assert (lb.out / name).is_file(), name
    assert json.loads((lb.out / "summary.json").read_text())["status"] == "completed"
    assert len(_connected_nodes(lb.log("server"))) == 3
    assert markers(markers_dir) == []  # the foreign app never ran, anywhere
    assert (
        "not the one fedssl server submitted"
        in (lb.root / "srv" / "logs" / "superexec.log").read_text()
    )
    assert "(4/4)" not in lb.log("server")  # the Sybil never joined
    # No task token was ever a process argument (and the watch did see the task processes).
    assert watch.token_args == [], watch.token_args
    assert any("flwr-serverapp" in s for s in watch.seen), watch.seen
    assert FORKED_TASK in watch.seen, watch.seen  # the devices' tasks, forked warm
    # The run ended visibly for every device, and nothing the daemon started outlived it.
    assert "told 3 of 3 devices that the run completed" in lb.log("server")
    for i, client in enumerate(clients):
        assert client.wait(60) == 0, lb.log(f"client{i}")
        assert "ended run" in lb.log(f"client{i}")
    assert port_is_free(lb.port), "the proxy outlived the daemon"
    assert processes_mentioning(str(lb.root / "srv")) == []
    # Server state and outputs are the daemon user's only.
    for path in [*(lb.root / "srv").rglob("*"), *lb.out.rglob("*")]:
        if not path.is_symlink():
            assert path.stat().st_mode & 0o077 == 0, path
    # The strangers never joined and gave up with an error.
    assert unregistered.wait(60) != 0, lb.log("unregistered")
    assert "not registered" in lb.log("unregistered")
    assert "BEGIN PUBLIC KEY" not in lb.log("server")  # one line per refused device:
    assert (
        lb.log("server").count(f"not registered (fingerprint {key_fingerprint(lb.keys[3], '')})")
        == 1
    )
    assert plaintext.wait(60) != 0, lb.log("plaintext")
    assert "plaintext client" in lb.log("plaintext")
    # Every device got each round's encoder, stored as the server's checkpoint byte for
    # byte, and evaluated it on its own data.
    final = (lb.out / "checkpoints" / "round-0002.pt").read_bytes()
    for i in range(3):
        stored = lb.root / f"client{i}" / "global"
        assert (stored / "encoder.pt").read_bytes() == final
        assert json.loads((stored / "encoder.json").read_text())["round"] == 2
    for row in rows:
        fe = row["federated_evaluation"]
        assert fe["devices"] == 3 and fe["labeled_devices"] == 3 and fe["accuracy"] > 0.5, fe
    # Per-client state and timings stayed on each device.
    for i in range(3):
        state = lb.root / f"client{i}"
        assert list(state.glob("client-state-*.bin")), f"client{i} kept no local state"
        stages = [json.loads(x)["stage"] for x in (state / "timing.jsonl").read_text().splitlines()]
        assert stages.count("collect_masked_vectors") == 2


def test_sigterm_stops_every_process_the_daemon_started(lb: Loopback) -> None:
    """Stopped while its ServerApp waits for devices: the ServerApp, SuperExec, SuperLink
    and nginx all go with the daemon (a ServerApp used to survive as a child of PID 1)."""
    lb.start_server(2, register=3)
    lb.wait_for(lambda: "waiting for 3 clients" in lb.log("server"), 120, "the ServerApp")
    assert any("flwr-serverapp" in p for p in processes_mentioning(str(lb.root / "srv")))
    assert lb.server is not None
    lb.kill(lb.server, signal.SIGTERM)
    assert lb.server.returncode == 0, lb.log("server")
    deadline = time.monotonic() + 30
    while processes_mentioning(str(lb.root / "srv")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(str(lb.root / "srv")) == []
    assert port_is_free(lb.port)


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
    # The same client processes saw the run through both server restarts to its end.
    for i, client in enumerate(clients):
        assert client.wait(60) == 0, lb.log(f"client{i}")
        assert lb.log(f"client{i}").count("ended run") == 1
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
    # ... and received the encoders of the rounds after its restart: the last is stored.
    stored = lb.root / "client0" / "global" / "encoder.pt"
    assert stored.read_bytes() == (lb.out / "checkpoints" / "round-0003.pt").read_bytes()
    assert restarted.poll() is None or restarted.returncode == 0
