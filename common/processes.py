"""Child processes of the fedssl daemons: started in their own session, their output
relayed line by line, stopped as a group (only what the daemon itself started); and
how a command stops on SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn

LineHook = Callable[[str], None]
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the daemon dies, even by SIGKILL, so no orphan
    SuperLink keeps the port. Elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def plain_text(line: str) -> str:
    """A child's log line without terminal colour codes (Flower colours its levels)."""
    return ANSI_COLOUR.sub("", line).strip()


def _stamp() -> str:
    """Wall-clock time to the millisecond, for the children's log files: Flower's own
    lines carry none, and a deployment round is read from several logs side by side."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class Child:
    """One child process and its descendants (its own session / process group)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log_file: Path | None = None,
        logger: logging.Logger | None = None,
        on_line: LineHook | None = None,
        cwd: str | Path | None = None,
        cleanup: Callable[[], None] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> None:
        self.name = name
        self._cleanup = cleanup  # run once the process has stopped
        self.argv = list(argv)
        self._log = logger or logging.getLogger(f"fedssl.{name}")
        self._on_line = on_line
        self._log_fh = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env=env,
            cwd=cwd,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads touch the fork window)
        )
        self._reader = threading.Thread(target=self._relay, name=f"relay-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _relay(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if self._log_fh is not None:
                self._log_fh.write(f"{_stamp()} {ANSI_COLOUR.sub('', line).rstrip()}\n")
                self._log_fh.flush()
            if self._on_line is not None:
                self._on_line(line)

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return rc

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM the group, then SIGKILL what is left after ``grace`` seconds."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._log.warning("%s did not stop in %.0f s; killing it", self.name, grace)
        # Grandchildren (a ServerApp or ClientApp process) may outlive their parent.
        self._signal_group(signal.SIGKILL)
        rc = self.proc.wait()
        self._reader.join(timeout=5)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        return rc

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group we created with start_new_session
        except (ProcessLookupError, PermissionError):
            pass


def run_quiet(argv: Sequence[str], env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run a short command; return (exit code, combined output)."""
    res = subprocess.run(
        list(argv),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return res.returncode, (res.stdout or "") + (res.stderr or "")


class TaskProcesses:
    """The short-lived task processes a SuperExec starts (one per ClientApp/ServerApp
    task): started in the SuperExec's own process group, so stopping it stops them;
    reaped as they end; terminated when the SuperExec closes."""

    def __init__(self) -> None:
        self._running: list[tuple[subprocess.Popen[bytes], Path | None]] = []

    def start(
        self, argv: Sequence[str], stdin_secret: str | None = None, secret_file: Path | None = None
    ) -> int:
        """Start ``argv``. A task token goes to its stdin (``stdin_secret``) or sits in
        ``secret_file`` (mode 0600, deleted when the process ends), never in its
        arguments, which every local user can read."""
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin_secret is not None else subprocess.DEVNULL
        )
        if stdin_secret is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin_secret.encode() + b"\n")
            proc.stdin.close()
        self._running.append((proc, secret_file))
        return proc.pid

    def start_fed(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` with a pipe on its stdin, for task tokens (``feed``)."""
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE)
        self._running.append((proc, None))
        return proc

    @staticmethod
    def feed(proc: subprocess.Popen[bytes], secret: str) -> bool:
        """Write one task token to ``proc``'s stdin; False if it is gone."""
        if proc.poll() is not None or proc.stdin is None:
            return False
        try:
            proc.stdin.write(secret.encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            return False
        return True

    def reap(self) -> None:
        for proc, secret in self._running:
            if proc.poll() is not None and secret is not None:
                secret.unlink(missing_ok=True)
        self._running = [(p, s) for p, s in self._running if p.poll() is None]

    def close(self, grace: float = 5.0) -> None:
        for proc, _ in self._running:
            if proc.poll() is None:
                proc.terminate()
        for proc, secret in self._running:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if secret is not None:
                secret.unlink(missing_ok=True)
        self._running = []


class StopFlag:
    """Set by SIGTERM / SIGINT; a daemon's main loop polls it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()


class StopSignal(BaseException):
    """SIGINT or SIGTERM arrived while a command ran code it cannot poll a ``StopFlag``
    in (a library's main loop). A ``BaseException``, as ``KeyboardInterrupt`` is, so
    that the library's ``except Exception`` lets it through to the command."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


@contextmanager
def stop_signals_raise(on_stop: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM calls ``on_stop`` and raises
    ``StopSignal`` in the main thread; any later one is ignored, so that the command's
    clean-up runs to its end. The previous handlers are back after the block."""
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in sigs}

    def first(signum: int, frame: FrameType | None) -> None:
        for sig in sigs:
            signal.signal(sig, signal.SIG_IGN)
        if on_stop is not None:
            on_stop()
        raise StopSignal(signum)

    for sig in sigs:
        signal.signal(sig, first)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, nothing to give back
                signal.signal(sig, handler)


def exit_at_once(code: int) -> NoReturn:
    """Flush the logs and the console, then end the process without waiting for its
    other threads: a library that was stopped mid-run (Flower's simulation) leaves
    non-daemon threads blocked for good, and a normal exit would wait on them forever."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
