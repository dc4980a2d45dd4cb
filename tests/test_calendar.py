"""XNYS trading days: holidays, early closes, tick decisions and how old a bar date is."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from trading_assets.core.calendar import (
    holiday_name,
    is_early_close,
    is_session,
    previous_session,
    session_close,
    sessions_after,
    sessions_between,
    tick_session,
    trading_days_old,
)

NY = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.mark.parametrize(("day", "trades"), [
    (date(2026, 11, 20), True),    # Friday
    (date(2026, 11, 21), False),   # Saturday
    (date(2026, 11, 26), False),   # Thanksgiving
    (date(2026, 11, 27), True),    # Black Friday, early close
    (date(2026, 12, 25), False),   # Christmas
    (date(2027, 1, 1), False),     # New Year's Day
    (date(2026, 6, 19), False),    # Juneteenth
])
def test_sessions_follow_the_exchange_calendar(day: date, trades: bool) -> None:
    assert is_session(day) is trades


def test_early_close_is_one_pm_new_york() -> None:
    assert session_close(date(2026, 11, 27)).astimezone(NY).hour == 13
    assert is_early_close(date(2026, 11, 27))
    assert session_close(date(2026, 11, 20)).astimezone(NY).hour == 16
    assert not is_early_close(date(2026, 11, 20))


def test_holidays_are_named() -> None:
    assert holiday_name(date(2026, 12, 25)) == "Christmas"
    assert holiday_name(date(2026, 11, 20)) == ""
    with pytest.raises(ValueError, match="Christmas"):
        session_close(date(2026, 12, 25))


@pytest.mark.parametrize(("now", "session", "reason"), [
    (ny(2026, 11, 20, 16, 30), date(2026, 11, 20), "closed"),
    (ny(2026, 11, 27, 16, 30), date(2026, 11, 27), "early close"),
    (ny(2026, 12, 25, 16, 30), None, "Christmas"),
    (ny(2026, 11, 21, 16, 30), None, "weekend"),
    (ny(2026, 11, 20, 12, 0), None, "before the close"),
    (ny(2026, 11, 27, 12, 59), None, "13:00 New York (early close)"),
])
def test_tick_session(now: datetime, session: date | None, reason: str) -> None:
    decision = tick_session(now)
    assert decision.session == session
    assert reason in decision.reason


@pytest.mark.parametrize(("bar", "now", "age"), [
    (date(2026, 11, 20), ny(2026, 11, 20, 17, 0), 0),
    (date(2026, 11, 20), ny(2026, 11, 22, 12, 0), 0),   # weekend adds nothing
    (date(2026, 11, 20), ny(2026, 11, 23, 9, 0), 1),    # Monday's session has started
    (date(2026, 11, 20), ny(2026, 11, 24, 17, 0), 2),
    (date(2026, 11, 25), ny(2026, 11, 27, 10, 0), 1),   # Thanksgiving skipped
    (date(2026, 12, 24), ny(2026, 12, 28, 10, 0), 1),   # Christmas skipped
    (date(2026, 11, 20), ny(2026, 11, 19, 10, 0), 0),   # a bar "from the future" is not old
])
def test_trading_days_old(bar: date, now: datetime, age: int) -> None:
    assert trading_days_old(bar, now) == age


def test_very_old_bar_dates_count_without_error() -> None:
    assert sessions_after(date(1990, 1, 2), date(2026, 11, 20)) > 2000


def test_previous_session_skips_holidays() -> None:
    assert previous_session(date(2026, 11, 27)) == date(2026, 11, 25)
    assert previous_session(date(2026, 11, 23)) == date(2026, 11, 20)


def test_sessions_before_the_calendars_first_year_are_refused_not_cut() -> None:
    # A silently later first session would shift every simulated series drawn on these dates.
    with pytest.raises(ValueError, match="first year 2010"):
        sessions_between(date(2009, 12, 31), date(2026, 11, 20))
    assert sessions_between(date(2012, 1, 2), date(2012, 1, 6))[0].date() == date(2012, 1, 3)
