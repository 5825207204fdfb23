"""How a run option is declared: once, on its ``RunConfig`` field.

Each field carries an :class:`Option`: its help text, the command-line flag it has in
the run commands (``fedssl simulate``, ``server``, ``benchmark``; None: settable with
``--set KEY=VALUE`` only), its choices and its simple bound. The flags, the checks of
single values and the README's option table are all generated from these
(``common.run_options``), so a new key appears everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Bound:
    """A check of one value; ``text`` completes "KEY ..." in the error message."""

    text: str
    holds: Callable[[Any], bool]


POSITIVE = Bound("must be > 0", lambda v: v > 0)
NON_NEGATIVE = Bound("must be >= 0", lambda v: v >= 0)
FRACTION = Bound("must be in (0, 1]", lambda v: 0.0 < v <= 1.0)
OPEN_UNIT = Bound("must be in (0, 1)", lambda v: 0.0 < v < 1.0)
HALF_OPEN_UNIT = Bound("must be in [0, 1)", lambda v: 0.0 <= v < 1.0)


@dataclass(frozen=True)
class Option:
    help: str
    flag: str | None = None  # e.g. "--rounds"; "--no-X" for a boolean that defaults to on
    flag_help: str = ""  # what a "--no-X" flag does, when the key's help does not say it
    choices: tuple[str, ...] = ()
    bound: Bound | None = None
    internal: bool = False  # set by the commands themselves (not a user option)
    client: bool = False  # a client needs it to train: it travels in each training message


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    flag_help: str = "",
    choices: tuple[str, ...] = (),
    bound: Bound | None = None,
    internal: bool = False,
    client: bool = False,
) -> Any:
    """A dataclass field with its :class:`Option` metadata."""
    meta = Option(help, flag, flag_help, choices, bound, internal, client)
    return field(default=default, metadata={"option": meta})
