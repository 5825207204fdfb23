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
    SUPEREXEC_MODULE,
    SUPEREXEC_NAMES,
    SUPERNODE_IDLE_SLEEP_S,
    SUPERNODE_MODULE,
    SUPERNODE_NAMES,
    SUPERNODE_REPLY_SLEEP_S,
    VERIFIED_FLWR,
    FlowerInternalsError,
    _module,
)


def test_flower_is_a_verified_release() -> None:
    assert flwr.__version__ in VERIFIED_FLWR, (
        f"flwr {flwr.__version__} is not one fedssl was verified with ({VERIFIED_FLWR}): "
        "re-check client/flower_internals.py, then add the version"
    )


def test_run_superexec_builds_its_executor_through_get_executor() -> None:
    module = _module(SUPEREXEC_MODULE, SUPEREXEC_NAMES)
    code = module.run_superexec.__code__
    assert "get_executor" in code.co_names  # looked up in the module at call time
    params = inspect.signature(module.run_superexec).parameters
    for name in ("runtime_api_address", "insecure", "root_certificates_path",
                 "superexec_auth_secret", "parent_pid", "runtime_dependency_install"):  # fmt: skip
        assert name in params, name


def test_run_clientapp_pulls_then_installs_through_module_names() -> None:
    module = _module(CLIENTAPP_MODULE, CLIENTAPP_NAMES)
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
        _module("flwr.supercore.superexec.run_superexec", ("no_such_function",))
    importlib.import_module(SUPEREXEC_MODULE)  # unchanged by the failed lookup


def test_the_supernode_sleeps_fedssl_shortens_are_where_they_were() -> None:
    """The idle pull sleeps a literal 3 s and the reply wait 0.5 s, both as
    ``time.sleep`` through the module's own ``time`` name."""
    module = _module(SUPERNODE_MODULE, SUPERNODE_NAMES)
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
    module = _module(CLIENTAPP_MODULE, CLIENTAPP_NAMES)
    assert "pull_and_inflate_object_from_tree" in module.pull_task_input.__code__.co_names
    params = inspect.signature(module.pull_and_inflate_object_from_tree).parameters
    assert "initial_backoff" in params and "backoff_cap" in params


def test_the_supernode_pulls_a_message_through_a_backoff_fedssl_can_set() -> None:
    module = _module(SUPERNODE_MODULE, SUPERNODE_NAMES)
    assert "pull_objects" in module._pull_and_store_message.__code__.co_names
    params = inspect.signature(module.pull_objects).parameters
    assert "initial_backoff" in params and "backoff_cap" in params
