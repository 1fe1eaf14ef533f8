"""Method options come from `method_args` in the config; each method checks its own keys."""

from __future__ import annotations

from typing import Any

from nlp_transfer.config import closest
from nlp_transfer.errors import ConfigError


def parse_args(method: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `given`; an unknown key names the closest known one."""
    for key in given:
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise ConfigError(
                f"method {method!r} has no option {key!r}{closest(key, list(defaults))} (options: {known})"
            )
    out = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        if (
            default is not None
            and not isinstance(value, type(default))
            and not (isinstance(default, float) and isinstance(value, int))
        ):
            raise ConfigError(
                f"method {method!r} option {key!r} must be {type(default).__name__}, not {value!r}"
            )
        out[key] = value
    return out
