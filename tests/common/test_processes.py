"""How a command stops on a signal: ``stop_signals_raise`` turns the first SIGINT or
SIGTERM into ``StopSignal``, ignores the next ones, and gives the old handlers back;
``fedssl`` turns Ctrl-C anywhere else into a one-line message and exit code 130."""

from __future__ import annotations

import os
import signal
import time

import pytest
from cli_run import run_main

from common.errors import EXIT_SIGNAL_BASE
from common.processes import StopSignal, stop_signals_raise


def _deliver(sig: int) -> None:
    """Send ``sig`` to this process and give Python the moment it needs to run the handler."""
    os.kill(os.getpid(), sig)
    time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_raises_and_later_ones_are_ignored(sig: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stops: list[str] = []
    with pytest.raises(StopSignal) as caught, stop_signals_raise(on_stop=lambda: stops.append("x")):
        try:
            _deliver(sig)
        except StopSignal:
            _deliver(signal.SIGINT)  # a second Ctrl-C during the clean-up changes nothing
            _deliver(signal.SIGTERM)
            raise
    assert caught.value.signum == sig
    assert caught.value.signal_name == signal.Signals(sig).name
    assert stops == ["x"]
    assert {s: signal.getsignal(s) for s in before} == before


def test_without_a_signal_the_block_runs_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals_raise():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulations.evaluate

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(simulations.evaluate, "run", interrupted)
    code, err = run_main(["evaluate", "--encoder", "x.pt"], capsys, monkeypatch)
    assert code == EXIT_SIGNAL_BASE + signal.SIGINT == 130
    assert err.strip() == "fedssl evaluate: stopped by SIGINT"
