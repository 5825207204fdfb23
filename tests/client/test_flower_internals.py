"""The Flower internals fedssl relies on (client/flower_internals.py) are where and what
they were in the verified release; this fails loudly when a Flower upgrade moves them."""

from __future__ import annotations

import importlib
import inspect

import flwr
import pytest

from client.flower_internals import (
    CLIENTAPP_MODULE,
    CLIENTAPP_NAMES,
    SECAGG_MOD_MODULE,
    SECAGG_MOD_NAMES,
    SUPEREXEC_MODULE,
    SUPEREXEC_NAMES,
    SUPERNODE_IDLE_SLEEP_S,
    SUPERNODE_MODULE,
    SUPERNODE_NAMES,
    SUPERNODE_REPLY_SLEEP_S,
    VERIFIED_FLWR,
    FlowerInternalsError,
    flower_module,
    use_fast_shamir_split,
)


def test_flower_is_a_verified_release() -> None:
    assert flwr.__version__ in VERIFIED_FLWR, (
        f"flwr {flwr.__version__} is not one fedssl was verified with ({VERIFIED_FLWR}): "
        "re-check client/flower_internals.py, then add the version"
    )


def test_run_superexec_builds_its_executor_through_get_executor() -> None:
    module = flower_module(SUPEREXEC_MODULE, SUPEREXEC_NAMES)
    code = module.run_superexec.__code__
    assert "get_executor" in code.co_names  # looked up in the module at call time
    params = inspect.signature(module.run_superexec).parameters
    for name in ("runtime_api_address", "insecure", "root_certificates_path",
                 "superexec_auth_secret", "parent_pid", "runtime_dependency_install"):  # fmt: skip
        assert name in params, name


def test_run_clientapp_pulls_then_installs_through_module_names() -> None:
    module = flower_module(CLIENTAPP_MODULE, CLIENTAPP_NAMES)
    names = module.run_clientapp.__code__.co_names
    assert "pull_task_input" in names and "install_from_fab" in names
    source = inspect.getsource(module.run_clientapp)
    # The bundle is installed before the ClientApp is loaded: the check comes first.
    assert source.index("pull_task_input(") < source.index("install_from_fab(")
    assert source.index("install_from_fab(") < source.index("load_client_app_fn(")


def test_executor_protocol_has_the_methods_fedssl_implements() -> None:
    from flwr.supercore.superexec.executor import Executor

    from client.superexec import CheckedClientAppExecutor
    from server.deployment.superexec import TokenFileExecutor

    wanted = {n for n in dir(Executor) if not n.startswith("_")}
    assert wanted <= {"get_eligible_capacity", "wait_for_capacity", "launch", "reconcile", "close"}
    for cls in (CheckedClientAppExecutor, TokenFileExecutor):
        assert wanted <= set(dir(cls)), (cls, wanted - set(dir(cls)))


def test_a_missing_name_is_reported_with_the_fix() -> None:
    with pytest.raises(FlowerInternalsError, match="verified with flwr"):
        flower_module("flwr.supercore.superexec.run_superexec", ("no_such_function",))
    importlib.import_module(SUPEREXEC_MODULE)  # unchanged by the failed lookup


def test_the_supernode_sleeps_fedssl_shortens_are_where_they_were() -> None:
    """The idle pull sleeps a literal 3 s and the reply wait 0.5 s, both as
    ``time.sleep`` through the module's own ``time`` name."""
    module = flower_module(SUPERNODE_MODULE, SUPERNODE_NAMES)
    loop = inspect.getsource(module.start_client_internal)
    push = inspect.getsource(module._push_messages)
    assert f"time.sleep({SUPERNODE_IDLE_SLEEP_S})" in loop
    assert f"time.sleep({SUPERNODE_REPLY_SLEEP_S})" in push
    assert module.time is importlib.import_module("time") or hasattr(module.time, "_real")


def test_shortened_sleeps_map_only_flowers_two_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from client.flower_internals import _ShorterSleeps

    slept: list[float] = []
    fake = type("T", (), {"sleep": staticmethod(slept.append), "monotonic": time.monotonic})
    sleeps = _ShorterSleeps(fake, idle_s=0.2, reply_s=0.05)  # type: ignore[arg-type]
    for s in (SUPERNODE_IDLE_SLEEP_S, SUPERNODE_REPLY_SLEEP_S, 1.0):
        sleeps.sleep(s)
    assert slept == [0.2, 0.05, 1.0]
    assert sleeps.monotonic is time.monotonic


def test_the_clientapp_pulls_its_message_through_a_backoff_fedssl_can_set() -> None:
    module = flower_module(CLIENTAPP_MODULE, CLIENTAPP_NAMES)
    assert "pull_and_inflate_object_from_tree" in module.pull_task_input.__code__.co_names
    params = inspect.signature(module.pull_and_inflate_object_from_tree).parameters
    assert "initial_backoff" in params and "backoff_cap" in params


def test_the_supernode_pulls_a_message_through_a_backoff_fedssl_can_set() -> None:
    module = flower_module(SUPERNODE_MODULE, SUPERNODE_NAMES)
    assert "pull_objects" in module._pull_and_store_message.__code__.co_names
    params = inspect.signature(module.pull_objects).parameters
    assert "initial_backoff" in params and "backoff_cap" in params


def test_the_supernode_loop_pulls_then_pushes_with_the_names_fedssl_wraps() -> None:
    """The loop takes the pulled message's run from ``_pull_and_store_message`` and calls
    ``_push_messages`` by keyword; the push hands each reply to ``send`` first."""
    module = flower_module(SUPERNODE_MODULE, SUPERNODE_NAMES)
    loop = inspect.getsource(module.start_client_internal)
    assert "run_id = _pull_and_store_message(" in loop and "_push_messages(" in loop
    for keyword in ("state=state", "object_store=store", "send=send", "push_object=push_object"):
        assert keyword in loop.split("_push_messages(", 1)[1].split(")", 1)[0]
    params = list(inspect.signature(module._push_messages).parameters)
    assert params == ["state", "object_store", "send", "push_object"]
    push = inspect.getsource(module._push_messages)
    assert "get_messages_legacy(is_reply=True)" in push and "send(message," in push


def test_the_push_step_waits_for_the_reply_of_the_message_just_pulled() -> None:
    """A stale reply of an ended run (10) is there when a message of run 20 is pulled:
    the push step pushes it and goes on until run 20's reply has been pushed."""
    import threading
    import time
    from types import ModuleType, SimpleNamespace

    from client.flower_internals import _push_until_current_reply

    def reply(run: int) -> SimpleNamespace:
        return SimpleNamespace(metadata=SimpleNamespace(run_id=run))

    class State:
        def __init__(self) -> None:
            self.replies = [reply(10)]
            self.lock = threading.Lock()

        def get_messages_legacy(self, *, is_reply: bool) -> list[SimpleNamespace]:
            with self.lock:
                return list(self.replies)

    def flower_push(state: State, object_store: object, send: object, push_object: object) -> None:
        # Flower 1.42's contract: wait for at least one reply, send all there are.
        while not (replies := state.get_messages_legacy(is_reply=True)):
            time.sleep(0.01)
        for message in replies:
            send(message, None, 0.0)  # type: ignore[operator]
            with state.lock:
                state.replies.remove(message)

    fake = ModuleType("fake_supernode")
    fake._pull_and_store_message = lambda **kwargs: 20  # type: ignore[attr-defined]
    fake._push_messages = flower_push  # type: ignore[attr-defined]
    _push_until_current_reply(fake)
    assert fake._pull_and_store_message() == 20  # type: ignore[attr-defined]
    state, sent = State(), []
    late = threading.Timer(0.3, lambda: state.replies.append(reply(20)))  # the task finishes
    late.start()
    fake._push_messages(
        state=state,
        object_store=None,
        send=lambda m, *a: sent.append(m.metadata.run_id),
        push_object=None,
    )  # type: ignore[attr-defined]
    late.join()
    assert sent == [10, 20] and state.replies == []


def test_the_client_mod_splits_its_secrets_through_the_name_fedssl_replaces() -> None:
    module = flower_module(SECAGG_MOD_MODULE, SECAGG_MOD_NAMES)
    assert module._share_keys.__code__.co_names.count("create_shares") == 1
    use_fast_shamir_split()
    from common.shamir import create_shares

    assert module.create_shares is create_shares
