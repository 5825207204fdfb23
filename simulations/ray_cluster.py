"""Join an existing Ray cluster for ``fedssl simulate --ray-address``.

Flower's Ray backend starts a private Ray unless one is already initialized in the
process, in which case it uses that one. Joining here, before the simulation starts,
lets the simulated clients run on every node of the cluster and hands them what a
private Ray's workers inherit from this process: fedssl's and Flower's environment
variables (thread count, telemetry off, no runtime dependency installation, plain
updates when SecAgg+ is off) and the import path. Each node must have this project,
its Python environment and its data sets installed at the same paths.
"""

from __future__ import annotations

import os
import socket
import sys

from common.errors import FedsslError

FORWARDED_PREFIXES = ("FEDSSL_", "FLWR_")


class RayClusterError(FedsslError):
    """The Ray cluster named by ``--ray-address`` cannot be joined."""


def worker_env() -> dict[str, str]:
    """What the cluster's workers need from this process's environment."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
    path = os.pathsep.join(p for p in sys.path if p)
    extra = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{path}{os.pathsep}{extra}" if extra else path
    return env


def _cannot_join(address: str, exc: Exception) -> RayClusterError:
    return RayClusterError(
        f"--ray-address {address}: cannot join a Ray cluster there ({exc}); "
        "start one with `ray start --head` or drop the option"
    )


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at ``HOST:PORT`` (Ray itself would retry for
    minutes); ``auto`` and other forms are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise _cannot_join(address, exc) from None


def join_cluster(address: str) -> str:
    """Connect this process to the cluster at ``address``; describe it for the log."""
    import ray

    check_reachable(address)
    try:
        ray.init(address=address, runtime_env={"env_vars": worker_env()}, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise _cannot_join(address, exc) from None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = sum(float(n.get("Resources", {}).get("CPU", 0)) for n in nodes)
    return f"the Ray cluster at {address} ({len(nodes)} nodes, {cpus:g} CPUs)"
