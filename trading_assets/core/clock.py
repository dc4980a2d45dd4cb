"""The clock the sensors, the schedule and a person's Approve read: one function, so tests
replace it in one place."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC (the sensors, the schedule's fallback and the freshness check read it)."""
    return datetime.now(UTC)
