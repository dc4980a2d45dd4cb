"""NYSE trading days from exchange_calendars (XNYS): holidays, early closes, how old a bar date is.

Pure and Dagster-free. The schedule asks `tick_session` whether a tick has anything to refresh;
the approval and freshness rules ask `trading_days_old` how many sessions a bar date is behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

EXCHANGE = "XNYS"
EXCHANGE_TZ = ZoneInfo("America/New_York")
# The calendar starts in a fixed year, not one relative to today: the simulated history (from
# 2012) draws its dates from it, and a window moving with the clock would start after 2012 some
# day and change every simulated price. Bar dates before it are simply "very old", they never
# need an exact count. The end follows the dates asked about.
FIRST_YEAR = 2010
_YEARS_AHEAD = 2


@lru_cache(maxsize=4)
def _calendar(end_year: int) -> Any:
    """The XNYS calendar from FIRST_YEAR to the end of `end_year` (building one takes about
    0.3 s)."""
    import exchange_calendars as xcals  # heavy: imported on first use, not at definition load

    return xcals.get_calendar(EXCHANGE, start=f"{FIRST_YEAR}-01-01", end=f"{end_year}-12-31")


def calendar_for(*days: date) -> Any:
    """A calendar covering `days` and the current year, reused across calls."""
    latest = max([*days, datetime.now(UTC).date()])
    return _calendar(latest.year + _YEARS_AHEAD)


def exchange_date(moment: datetime) -> date:
    """The calendar date at the exchange (New York) at `moment`; naive times are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(EXCHANGE_TZ).date()


def is_session(day: date) -> bool:
    """Whether the exchange trades on `day` (weekends and holidays are not sessions)."""
    return bool(calendar_for(day).is_session(day.isoformat()))


def session_close(day: date) -> datetime:
    """The session's close in UTC (13:00 New York on early-close days such as Black Friday)."""
    if not is_session(day):
        raise ValueError(f"{day} is not an {EXCHANGE} session ({closed_reason(day)}).")
    return calendar_for(day).session_close(day.isoformat()).to_pydatetime()


def is_early_close(day: date) -> bool:
    """Whether the session closes early (before 16:00 New York)."""
    close = session_close(day).astimezone(EXCHANGE_TZ)
    return (close.hour, close.minute) < (16, 0)


def holiday_name(day: date) -> str:
    """The holiday's name when `day` is a weekday holiday, else an empty string."""
    cal = calendar_for(day)
    names = cal.regular_holidays.holidays(day.isoformat(), day.isoformat(), return_name=True)
    if len(names):
        return str(names.iloc[0])
    adhoc = {ts.date() for ts in cal.adhoc_holidays}
    return "special closure" if day in adhoc else ""


def closed_reason(day: date) -> str:
    """Why the exchange does not trade on `day`, for skip messages."""
    if day.weekday() >= 5:
        return "weekend"
    return f"holiday: {holiday_name(day) or 'exchange closed'}"


def sessions_between(start: date, end: date) -> Any:
    """The sessions from `start` to `end` inclusive as a pandas DatetimeIndex (midnight, naive):
    the dates simulated bars are drawn on, so they skip holidays as the exchange does. A
    `start` before FIRST_YEAR is refused rather than silently cut (the series would shift)."""
    if start.year < FIRST_YEAR:
        raise ValueError(f"{start} is before the {EXCHANGE} calendar's first year {FIRST_YEAR}.")
    cal = calendar_for(end)
    first = max(start, cal.first_session.date())
    return cal.sessions_in_range(first.isoformat(), end.isoformat())


def current_session(today: date | None = None) -> date:
    """The session a bar dated `today` (New York; default now) may at most carry: today's when
    the exchange trades today, else the previous one. Later bar dates are in the future."""
    today = today or exchange_date(datetime.now(UTC))
    return today if is_session(today) else previous_session(today)


def last_completed_session(now: datetime | None = None) -> date:
    """The newest session whose close has passed at `now` (default: now; naive is UTC).

    On a Sunday evening (already Monday in UTC) this is Friday; on Thanksgiving, Wednesday;
    during Monday's session, still Friday."""
    now = now or datetime.now(UTC)
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    today = exchange_date(now)
    if is_session(today) and now >= session_close(today):
        return today
    return previous_session(today)


def previous_session(day: date) -> date:
    """The last session strictly before `day`."""
    cal = calendar_for(day)
    start = (day - timedelta(days=15)).isoformat()
    sessions = cal.sessions_in_range(start, (day - timedelta(days=1)).isoformat())
    if len(sessions) == 0:  # impossible for XNYS: no 15-day closure since the calendar starts
        raise ValueError(f"No {EXCHANGE} session in the 15 days before {day}.")
    return sessions[-1].date()


def sessions_after(start: date, end: date) -> int:
    """How many sessions fall in (start, end]: 0 when end <= start."""
    if end <= start:
        return 0
    cal = calendar_for(start, end)
    first = cal.first_session.date()
    low = max(start + timedelta(days=1), first)
    if low > end:
        return 0
    return len(cal.sessions_in_range(low.isoformat(), end.isoformat()))


def trading_days_old(bar_date: date, now: datetime) -> int:
    """Sessions on exchange dates after `bar_date` up to today's (New York) date.

    Friday's bar is 0 days old over the weekend and 1 on Monday (a newer session has started);
    a holiday adds nothing. "Older than one trading day" is therefore `trading_days_old(...) > 1`:
    Monday's signal is still current on Tuesday evening while that day's tick runs, stale on
    Wednesday.
    """
    return sessions_after(bar_date, exchange_date(now))


@dataclass(frozen=True)
class TickDecision:
    """Whether a scheduled tick refreshes anything, for which session, and why (for skip text)."""

    session: date | None
    reason: str


def tick_session(now: datetime) -> TickDecision:
    """The session a tick at `now` refreshes: today's, once it has closed; None otherwise.

    No work on weekends and holidays; on early-close days (13:00) the default 16:30 tick runs as
    usual, and a tick configured before the close skips instead of storing a half-day bar.
    """
    today = exchange_date(now)
    if not is_session(today):
        return TickDecision(None, f"{EXCHANGE} closed on {today} ({closed_reason(today)}): "
                                  "nothing to refresh.")
    close = session_close(today)
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if moment < close:
        local = close.astimezone(EXCHANGE_TZ).strftime("%H:%M")
        early = " (early close)" if is_early_close(today) else ""
        return TickDecision(None, f"{EXCHANGE} session {today} closes at {local} New York"
                                  f"{early}; the tick fires before the close, so it waits for "
                                  "the next one. Set TRADING_SCHEDULE_CRON after the close.")
    early = " (early close at 13:00)" if is_early_close(today) else ""
    return TickDecision(today, f"{EXCHANGE} session {today} closed{early}.")


def session_after(day: date, n: int) -> date:
    """The n-th session after `day` (n >= 1): the last day an order good for n sessions works."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    cal = calendar_for(day, day + timedelta(days=7 * n + 15))
    sessions = cal.sessions_in_range((day + timedelta(days=1)).isoformat(),
                                     (day + timedelta(days=7 * n + 15)).isoformat())
    return sessions[n - 1].date()
