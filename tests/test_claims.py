"""Analysis claims (one model call per symbol, bar and analyst across runs) in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import event

DAY = date(2026, 11, 20)
KEYS = [("AAA", DAY), ("BBB", DAY), ("CCC", DAY)]


@contextmanager
def commits(app_db: Any) -> Iterator[list[int]]:
    """The commits on the application database while the block runs."""
    seen: list[int] = []

    def on_commit(_conn: Any) -> None:
        seen.append(1)

    event.listen(app_db.engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(app_db.engine, "commit", on_commit)


def test_a_run_claims_and_releases_its_analyses_in_one_commit_each(
        resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    with commits(app_db) as claimed:
        assert app_db.claim_analyses(KEYS, "rules", "run-1", 60.0) == [True, True, True]
    # Another run meets the held leases: nothing for it, and no second model call.
    assert app_db.claim_analyses(KEYS, "rules", "run-2", 60.0) == [False, False, False]
    # The holder renews its own claims.
    assert app_db.claim_analyses(KEYS[:1], "rules", "run-1", 60.0) == [True]
    with commits(app_db) as released:
        app_db.release_analyses(KEYS[:2], "rules", "run-1")
    assert (len(claimed), len(released)) == (1, 1)  # one per call, not one or two per symbol
    # Released ones are free for the other run; the one still held is not.
    assert app_db.claim_analyses(KEYS, "rules", "run-2", 60.0) == [True, True, False]


def test_an_expired_lease_is_taken_over(resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    assert app_db.claim_analyses(KEYS[:1], "rules", "run-1", -1.0) == [True]  # expired at once
    assert app_db.claim_analyses(KEYS, "rules", "run-2", 60.0) == [True, True, True]
    assert app_db.claim_analyses(KEYS[:1], "rules", "run-1", 60.0) == [False]
