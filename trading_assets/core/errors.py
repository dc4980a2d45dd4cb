"""Turning exceptions and Dagster's serialized step errors into the text a person should read."""

from __future__ import annotations

from typing import Any


def error_text(exc: BaseException) -> str:
    """An exception's own message (str() of a KeyError would wrap it in quotes)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def root_error(error: Any) -> Any:
    """The innermost cause of a serialized step error (Dagster wraps the user's exception).

    Duck-typed on SerializableErrorInfo's `cause`, so callers need not import Dagster.
    """
    while error is not None and error.cause is not None:
        error = error.cause
    return error
