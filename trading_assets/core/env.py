"""Reading settings from an environment mapping: numbers, yes/no values, EnvVar references.

Shared by trading_assets/settings.py and the resources that read their own variables
(resources/llm.py, resources/tracking.py), so a bad value is always a ConfigError naming the
variable, which the CLI and the Gradio app report without a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from typing import Any

from trading_assets.core.settings_registry import SETTINGS

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """An environment variable with a value that cannot be used."""


def env_number(env: Mapping[str, str], name: str, default: Any, kind: type = float) -> Any:
    """`name` as a `kind` (float or int), `default` when unset or blank. NaN, infinity and a
    value outside the range the settings registry gives `name` are refused (the registry is
    the one place a range is written)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number; "
                          f"unset it for the default {default}.") from None
    problem = SETTINGS[name].range_problem(value)
    if problem:
        raise ConfigError(f"{name}={raw!r} {problem}; unset it for the default {default}.")
    return value


def env_date(env: Mapping[str, str], name: str) -> date | None:
    """`name` as a YYYY-MM-DD date, None when unset or blank."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a date: use YYYY-MM-DD such as 2026-11-20, "
                          "or unset it.") from None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """`name` as yes/no (1/0, true/false, yes/no, on/off), `default` when unset or blank."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value: use 1/0, true/false, yes/no or "
                      "on/off.")


def referable(env: Mapping[str, str], name: str) -> bool:
    """Whether a setting can go into resource config as a Dagster EnvVar reference (shown by
    name in the Dagster UI, never by value): `env` sets it to what the process environment
    holds, so resolving the reference gives back this very value. A mapping that differs
    (a test's or a benchmark's environment) keeps the plain value."""
    value = env.get(name, "")
    return bool(value) and os.environ.get(name) == value


def plain(value: str) -> str:
    """A setting's value. A Dagster EnvVar is a str holding the variable's NAME: Dagster
    resolves it for a run, but the CLI and the Gradio app use resources directly, so every
    field that may hold one is read through this (duck-typed: core imports no Dagster)."""
    resolve = getattr(value, "get_value", None)
    return (resolve() or "") if callable(resolve) else value
