"""A client's failure reaches the round record as its own message, not a Ray dump."""

from __future__ import annotations

from server.failures import describe_failure

RAY_WRAPPED = (
    "Exception: Error(code=2, reason='<class \\'ray.exceptions.RayTaskError(ClientAppException)"
    "\\'>:<\\'\x1b[36mray::ClientAppActor.run()\x1b[39m (pid=1, ip=192.0.2.2)\\n"
    '  File "ray_actor.py", line 65, in run\\n'
    "    raise ClientAppException(str(ex)) from ex\\n"
    "flwr.clientapp.client_app.ClientAppException: \\n"
    "Exception ClientAppException occurred. Message: client 1, round 1: local data has 1 "
    "non-finite values; nothing trained or sent\\'>')"
)


def test_the_clients_own_message_is_extracted_from_a_ray_error() -> None:
    assert describe_failure(RAY_WRAPPED) == (
        "client 1, round 1: local data has 1 non-finite values; nothing trained or sent"
    )


def test_last_exception_line_of_a_traceback() -> None:
    text = "Exception: Error(code=2, reason='Traceback:\\n  File \"a.py\"\\nKeyError: 5')"
    assert describe_failure(text) == "KeyError: 5"


def test_plain_text_is_kept_and_bounded() -> None:
    assert describe_failure("RuntimeError: client died") == "RuntimeError: client died"
    assert len(describe_failure("x" * 1000)) == 300
