"""Raw run-config values (strings from a CLI, TOML scalars) to typed ones, and the
error that names a bad key."""

from __future__ import annotations

import math
from typing import Any

from common.errors import BadInputError

Scalar = bool | int | float | str


class ConfigError(BadInputError):
    """A configuration value is wrong; the message names the key (``key``, when known)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def config_key(name: str) -> str:
    """The kebab-case key of a ``RunConfig`` field name."""
    return name.replace("_", "-")


def parse_set_items(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` options (repeatable) as raw flat config entries."""
    extra: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        extra[key.strip()] = value.strip()
    return extra


def coerce(key: str, raw: Any, default: Any) -> Any:
    """Convert a raw value (possibly a string from a CLI) to the default's type."""
    try:
        if isinstance(default, bool):
            return _coerce_bool(raw)
        if isinstance(default, int):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        return str(raw)
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise ConfigError(f"{key} must be a {kind}, got {raw!r}", key) from None


def _coerce_bool(raw: Any) -> bool:
    if isinstance(raw, str):
        low = raw.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(raw)
    return bool(raw)
