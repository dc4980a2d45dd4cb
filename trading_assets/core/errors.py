"""Turning exceptions and Dagster's serialized step errors into the text a person should read."""

from __future__ import annotations

from typing import Any


def error_text(exc: BaseException) -> str:
    """An exception's own message (str() of a KeyError would wrap it in quotes)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


class OutageError(ConnectionError):
    """An outside system every symbol needs (the object store, a database) is down, unreachable
    or not answering. The message is one line: the system, the setting that points at it and
    what to do. A step stops at the first one instead of paying the same wait per symbol, and
    every command prints it as is (the traceback stays in the run's event log)."""


# SQLAlchemy's "cannot connect / connection lost" errors, by name (core imports no library).
_DB_CONNECTION_ERRORS = frozenset({"OperationalError", "InterfaceError"})


def outage_line(exc: BaseException) -> str | None:
    """The one line of an outage, also when it is the cause of another error; else None.

    Our own databases and the object store raise OutageError with their setting's name. A
    SQLAlchemy connection error that is none of those came from the Dagster instance's storage
    (the only other database a command opens), so that is what the line names.
    """
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, OutageError):
            return _first_line(error)
    for error in chain:
        if (type(error).__module__.startswith("sqlalchemy")
                and type(error).__name__ in _DB_CONNECTION_ERRORS):
            reason = _first_line(getattr(error, "orig", None) or error)
            return (f"DAGSTER_HOME: the Dagster instance's database is not reachable "
                    f"({reason[:200]}). Start it or check DAGSTER_HOME's dagster.yaml (in "
                    "production the DAGSTER_POSTGRES_* settings), then run again.")
    return None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def root_error(error: Any) -> Any:
    """The error the user's code raised under Dagster's wrappers of a serialized step error.

    Dagster wraps it (DagsterExecutionStepExecutionError ...); what it wraps may itself carry
    a library cause (a MinIO error behind the store's own message), which is a detail of the
    message already shown. Duck-typed on SerializableErrorInfo's `cls_name` and `cause`, so
    callers need not import Dagster.
    """
    while (error is not None and error.cause is not None
           and str(getattr(error, "cls_name", "") or "").startswith("Dagster")):
        error = error.cause
    return error


def step_error_text(error: Any) -> str:
    """A serialized step error's message for people: our own errors (resources, the code
    location) already say what happened and what to do, so their dotted class name is left
    off; a library's or Python's error keeps its type ("ValueError: ...")."""
    message = str(error.message).strip()
    prefix, sep, rest = message.partition(": ")
    if sep and prefix.startswith(("resources.", "trading_assets.")) \
            and prefix.endswith(str(error.cls_name)):
        return rest
    return message
