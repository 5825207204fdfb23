"""The one place where fedssl reaches into Flower's internals (verified with flwr 1.42.0).

Flower 1.42 offers no public hook for either of these, and both are small:

1. **Whose executor a SuperExec uses.** Flower's SuperExec loop
   (``flwr.supercore.superexec.run_superexec.run_superexec``: task acquisition, the
   SuperExec auth secret, parent monitoring) builds its executor with the module-level
   ``get_executor``; its built-in executors start ``flwr-serverapp --token TOKEN`` and
   ``flwr-clientapp --token TOKEN``, which puts the task token where every local user
   can read it (``/proc/PID/cmdline``). fedssl's SuperExecs (``server.deployment.superexec`` and
   ``client.superexec``) run Flower's loop with their own executor instead.
2. **What a ClientApp process accepts.** ``flwr.supernode.runtime.run_clientapp``
   pulls its inputs with ``pull_task_input`` and unpacks the app bundle with
   ``install_from_fab`` before importing any of its code. fedssl's device runner wraps
   both, so a bundle that fails the signature check is never written nor imported
   (``common.app_signing``), and the server gets the reason as the task's error reply.
   The same process pulls its message with a short backoff
   (``pull_and_inflate_object_from_tree``): a warm process asks before the SuperNode
   holds the message, and Flower's 1 s, 2 s backoff cost 3 s of every training stage.

3. **How often a SuperNode polls, and for which reply it waits.** ``flwr.supernode.start_client_internal`` sleeps a
   hard-coded 3 s between idle pulls and 0.5 s while it waits for the ClientApp's
   reply. Each SecAgg+ stage waits for the slowest device's poll, so these sleeps were
   most of a deployment round. fedssl's SuperNode launcher (``client.supernode``)
   shortens exactly these two sleeps in that module, and the first backoff (1 s) of its
   ``pull_objects`` when a message's content is not on the server yet, before Flower's
   entry point runs. Its push step also waits for the reply of the message just pulled,
   not for any reply (``_push_until_current_reply``).

4. **How a client splits its SecAgg+ secrets.** ``secaggplus_mod._share_keys`` splits
   two secrets a round with pycryptodome's ``Shamir.split`` (about 7 ms here, most of a
   client's share-keys stage); ``use_fast_shamir_split`` points the mod's
   ``create_shares`` at ``common.shamir.create_shares`` (same format, CSPRNG
   coefficients, about 0.5 ms), which Flower's own ``combine_shares`` rebuilds.

``tests/client/test_flower_internals.py`` fails loudly when Flower moves any of these.
The simulation engine's one patch (its message delivery loop) lives beside the engine,
in ``simulations/flower_vce.py``, and checks its names through ``flower_module``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from common.errors import FedsslError

VERIFIED_FLWR = ("1.42.0",)
# The names fedssl replaces or calls, per Flower module.
SUPEREXEC_MODULE = "flwr.supercore.superexec.run_superexec"
SUPEREXEC_NAMES = ("get_executor", "run_superexec")
CLIENTAPP_MODULE = "flwr.supernode.runtime.run_clientapp"
CLIENTAPP_NAMES = (
    "pull_task_input",
    "install_from_fab",
    "run_clientapp",
    "pull_and_inflate_object_from_tree",
)
# A warm ClientApp process asks for its message before the SuperNode has pulled it from
# the server; Flower then backs off 1 s, 2 s, ... (PULL_INITIAL_BACKOFF). On loopback a
# short, capped backoff is enough.
LOCAL_PULL_BACKOFF_S, LOCAL_PULL_BACKOFF_CAP_S = 0.05, 0.5

SECAGG_MOD_MODULE = "flwr.client.mod.secure_aggregation.secaggplus_mod"
SECAGG_MOD_NAMES = ("create_shares", "_share_keys")

SUPERNODE_MODULE = "flwr.supernode.start_client_internal"
SUPERNODE_NAMES = (
    "start_client_internal",
    "_pull_and_store_message",
    "_push_messages",
    "pull_objects",
)
# The SuperNode may ask for a message's content before the server has stored it; Flower
# then backs off 1 s, 2 s, ... A shorter start, capped, through the network face.
NETWORK_PULL_BACKOFF_S, NETWORK_PULL_BACKOFF_CAP_S = 0.1, 1.0
# Flower's fixed sleeps in SUPERNODE_MODULE: between idle pulls; waiting for a reply.
SUPERNODE_IDLE_SLEEP_S, SUPERNODE_REPLY_SLEEP_S = 3, 0.5

# verify(fab bytes, app-signature token, overridden run-config keys) -> signer name
FabCheck = Callable[[bytes, str, Iterable[str]], str]
log = logging.getLogger("fedssl.client")


class OneTaskTypeExecutor:
    """A SuperExec executor (the protocol of ``flwr.supercore.superexec.executor.Executor``)
    for one task type, whose processes fedssl starts itself (``start``); they are
    reaped between polls and stopped with the SuperExec."""

    task_type = ""  # a flwr TaskType value, e.g. "flwr-clientapp"

    def __init__(self) -> None:
        from common.processes import TaskProcesses

        self.tasks = TaskProcesses()

    def get_eligible_capacity(
        self, supported_task_types: set[Any], **_: Any
    ) -> tuple[set[Any], set[str]]:
        return {t for t in supported_task_types if t == self.task_type}, set()

    def wait_for_capacity(self, *_: Any, **__: Any) -> None:
        return None

    def launch(self, spec: Any) -> Any:
        from flwr.supercore.superexec.executor import LaunchResult

        if spec.task_type != self.task_type:
            return LaunchResult.failed(f"this SuperExec runs {self.task_type} tasks only")
        refusal = self.start(spec)
        return LaunchResult.failed(refusal) if refusal else LaunchResult.accepted()

    def start(self, spec: Any) -> str:
        """Start the task's process; return why it was refused, or "" once started."""
        raise NotImplementedError

    def reconcile(self) -> None:
        self.tasks.reap()

    def close(self) -> None:
        self.tasks.close()


class FlowerInternalsError(FedsslError, RuntimeError):
    """The installed Flower lacks a name fedssl relies on: fedssl must be updated."""


def flower_module(name: str, required: tuple[str, ...]) -> ModuleType:
    import importlib

    import flwr

    module = importlib.import_module(name)
    missing = [n for n in required if not callable(getattr(module, n, None))]
    if missing:
        raise FlowerInternalsError(
            f"flwr {flwr.__version__}: {name} lacks {', '.join(missing)}; fedssl was "
            f"verified with flwr {', '.join(VERIFIED_FLWR)} (client/flower_internals.py)"
        )
    return module


def run_superexec_with(
    executor: Any,
    *,
    runtime_api_address: str,
    root_certificates: str | None,
    auth_secret: bytes | None,
    parent_pid: int | None,
) -> None:
    """Flower's SuperExec loop, launching every task through ``executor`` (blocks)."""
    superexec = flower_module(SUPEREXEC_MODULE, SUPEREXEC_NAMES)
    superexec.get_executor = lambda *args, **kwargs: executor  # type: ignore[attr-defined]
    superexec.run_superexec(
        runtime_api_address=runtime_api_address,
        insecure=root_certificates is None,
        root_certificates_path=root_certificates,
        superexec_auth_secret=auth_secret,
        parent_pid=parent_pid,
        runtime_dependency_install=False,
    )


def run_checked_clientapp(
    check: FabCheck | None, *, runtime_api_address: str, token: str, parent_pid: int | None
) -> None:
    """Flower's ClientApp process, installing the app bundle only if ``check`` passes.

    ``check`` None (a device without a CA, ``--insecure``) runs any bundle. Exits the
    process, as ``flwr-clientapp`` does.
    """
    clientapp = flower_module(CLIENTAPP_MODULE, CLIENTAPP_NAMES)
    if check is not None:
        _guard_fab_install(clientapp, check)
    _shorten_pull_backoff(
        clientapp,
        "pull_and_inflate_object_from_tree",
        LOCAL_PULL_BACKOFF_S,
        LOCAL_PULL_BACKOFF_CAP_S,
    )
    clientapp.run_clientapp(
        runtime_api_address=runtime_api_address,
        token=token,
        insecure=True,  # the SuperNode's Runtime API on 127.0.0.1
        certificates=None,
        parent_pid=parent_pid,
        runtime_dependency_install=False,
    )


def _shorten_pull_backoff(module: ModuleType, name: str, initial_s: float, cap_s: float) -> None:
    """Make ``module.name`` (a Flower pull taking ``initial_backoff``/``backoff_cap``)
    back off from ``initial_s`` up to ``cap_s`` unless its caller says otherwise."""
    pull = getattr(module, name)

    def pull_soon(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("initial_backoff", initial_s)
        kwargs.setdefault("backoff_cap", cap_s)
        return pull(*args, **kwargs)

    setattr(module, name, pull_soon)


def _guard_fab_install(clientapp: ModuleType, check: FabCheck) -> None:
    from common.app_signing import APP_SIGNATURE_KEY, AppSignatureError

    pull, install = clientapp.pull_task_input, clientapp.install_from_fab
    verdict: dict[str, Any] = {}

    def checked_pull(client: Any) -> Any:
        message, context, run, fab = pull(client)
        token = str(context.run_config.get(APP_SIGNATURE_KEY, ""))
        try:
            signer = check(fab.content, token, run.override_config.keys())
            verdict["digest"] = hashlib.sha256(fab.content).hexdigest()
            log.debug("run %s: app bundle signed by %s", run.run_id, signer)
        except AppSignatureError as exc:
            log.error("run %s: refused the app bundle: %s", run.run_id, exc)
            verdict["refusal"] = exc
        return message, context, run, fab

    def checked_install(content: bytes, *args: Any, **kwargs: Any) -> Any:
        if "refusal" in verdict:
            raise verdict["refusal"]
        if hashlib.sha256(content).hexdigest() != verdict.get("digest"):
            raise AppSignatureError("the bundle to install is not the one that was checked")
        return install(content, *args, **kwargs)

    clientapp.pull_task_input = checked_pull  # type: ignore[attr-defined]
    clientapp.install_from_fab = checked_install  # type: ignore[attr-defined]


class _ShorterSleeps:
    """Stands in for the ``time`` module inside Flower's SuperNode loop: its two fixed
    sleeps become ``idle_s`` and ``reply_s``; everything else is the real ``time``."""

    def __init__(self, real: ModuleType, idle_s: float, reply_s: float) -> None:
        self._real, self._idle, self._reply = real, idle_s, reply_s

    def sleep(self, seconds: float) -> None:
        if seconds == SUPERNODE_IDLE_SLEEP_S:
            seconds = self._idle
        elif seconds == SUPERNODE_REPLY_SLEEP_S:
            seconds = self._reply
        self._real.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def use_fast_shamir_split() -> None:
    """Point Flower's client SecAgg+ mod at ``common.shamir.create_shares``."""
    from common.shamir import create_shares

    module = flower_module(SECAGG_MOD_MODULE, SECAGG_MOD_NAMES)
    module.create_shares = create_shares  # type: ignore[attr-defined]


def shorten_supernode_polls(idle_s: float, reply_s: float) -> None:
    """Make the SuperNode of this process poll every ``idle_s`` when idle and check for
    the ClientApp's reply every ``reply_s`` (Flower: 3 s and 0.5 s, hard-coded)."""
    import time

    module = flower_module(SUPERNODE_MODULE, SUPERNODE_NAMES)
    if not isinstance(module.time, ModuleType):
        return  # already shortened in this process
    module.time = _ShorterSleeps(time, idle_s, reply_s)  # type: ignore[attr-defined]
    _shorten_pull_backoff(
        module, "pull_objects", NETWORK_PULL_BACKOFF_S, NETWORK_PULL_BACKOFF_CAP_S
    )
    _push_until_current_reply(module)


def _push_until_current_reply(module: ModuleType) -> None:
    """Make the SuperNode's push step wait for the reply of the message it just pulled.

    Flower's loop pulls one message, then ``_push_messages`` pushes whatever replies
    exist and returns. A reply of a run that has ended meanwhile (a task of the server's
    killed run that finished after the kill) then counts as "the" reply: the loop goes
    back to pulling while the new run's reply waits for the next message, past the
    server's SecAgg+ timeout. Here the push step goes on (pushing the stale replies,
    which the server ignores) until a reply of the run it just pulled from is pushed.
    """
    pull, push = module._pull_and_store_message, module._push_messages
    current: dict[str, int | None] = {"run": None}

    def pull_tracking(*args: Any, **kwargs: Any) -> Any:
        run = pull(*args, **kwargs)
        if run is not None:
            current["run"] = run
        return run

    def push_current(state: Any, object_store: Any, send: Any, push_object: Any) -> None:
        sent: set[int] = set()  # the runs of the replies actually handed to ``send``

        def send_recording(message: Any, *args: Any, **kwargs: Any) -> Any:
            sent.add(message.metadata.run_id)
            return send(message, *args, **kwargs)

        # Each call waits for at least one reply (Flower's own wait) and pushes them all.
        while True:
            push(
                state=state, object_store=object_store, send=send_recording, push_object=push_object
            )
            if current["run"] is None or current["run"] in sent:
                return

    module._pull_and_store_message = pull_tracking  # type: ignore[attr-defined]
    module._push_messages = push_current  # type: ignore[attr-defined]
