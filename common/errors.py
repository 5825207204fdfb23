"""fedssl's exit codes and the one base of the errors it raises on purpose.

Every command lets a :class:`FedsslError` rise to ``common.cli.main``, which prints
its message (written for the person who gave the input, so no traceback) and exits
with the error's code. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # a failure at run time (a process died, an export did not match)
EXIT_BAD_INPUT = 2  # bad options, configuration, data or files; reported before work starts
EXIT_FAILED_ROUNDS = 3  # more rounds failed than max-failed-rounds allows
EXIT_GROWTH = 4  # simulations.bench.load --check: memory or open files grew
EXIT_SIGNAL_BASE = 128  # + the signal's number: stopped by SIGINT (130) or SIGTERM (143)


class FedsslError(Exception):
    """Base of fedssl's errors; ``exit_code`` is what the command exits with."""

    exit_code = EXIT_ERROR


class BadInputError(FedsslError, ValueError):
    """Bad options, configuration, data or files; the message names what and why.

    Also a ValueError, so library callers that catch ValueError keep working."""

    exit_code = EXIT_BAD_INPUT
