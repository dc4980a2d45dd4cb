"""Simulated bars, the CSV reader's error messages and the bar sanity rules."""

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from trading_assets.core.bars import (
    BarDataError,
    bar_problems,
    checked_bars,
    read_csv_bars,
    simulate_bars,
)
from trading_assets.core.calendar import last_completed_session

AS_OF = date(2026, 11, 20)
NY = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def test_simulated_bars_are_deterministic_and_realistic() -> None:
    first = simulate_bars("TSLA", AS_OF)
    again = simulate_bars("TSLA", AS_OF)
    other = simulate_bars("NVDA", AS_OF)
    pd.testing.assert_frame_equal(first, again)
    assert not first["close"].equals(other["close"])
    assert len(first) == 400
    assert first["date"].iloc[-1] == pd.Timestamp(AS_OF)
    assert bar_problems(first) == []
    returns = first["close"].pct_change().dropna()
    assert 0.005 < returns.std() < 0.06  # daily volatility of a real stock
    assert (first["volume"] > 0).all()


def test_simulated_history_is_stable_across_as_of_dates() -> None:
    later = simulate_bars("TSLA", date(2026, 11, 23))
    earlier = simulate_bars("TSLA", AS_OF)
    overlap = later[later["date"] <= pd.Timestamp(AS_OF)].tail(100).reset_index(drop=True)
    pd.testing.assert_frame_equal(overlap, earlier.tail(100).reset_index(drop=True))


def test_simulated_prices_do_not_move_when_the_year_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from trading_assets.core import bars, calendar

    def simulated_in(year: int) -> pd.DataFrame:
        class Clock(datetime):
            @classmethod
            def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
                return datetime(year, 6, 1, 12, tzinfo=UTC)

        monkeypatch.setattr(calendar, "datetime", Clock)
        bars._sessions_until.cache_clear()  # the sessions are cached per as-of date
        return simulate_bars("TSLA", AS_OF)

    try:
        pd.testing.assert_frame_equal(simulated_in(2031), simulated_in(2026))
    finally:
        bars._sessions_until.cache_clear()


def test_last_completed_session_follows_the_exchange_calendar() -> None:
    assert last_completed_session(ny(2026, 11, 22, 12)) == date(2026, 11, 20)  # Sunday
    assert last_completed_session(ny(2026, 11, 23, 17)) == date(2026, 11, 23)  # Monday, closed
    assert last_completed_session(ny(2026, 11, 23, 10)) == date(2026, 11, 20)  # still open
    assert last_completed_session(ny(2026, 11, 26, 18)) == date(2026, 11, 25)  # Thanksgiving
    assert last_completed_session(ny(2026, 12, 25, 18)) == date(2026, 12, 24)  # Christmas


def test_on_a_sunday_evening_the_last_simulated_bar_is_fridays() -> None:
    # 21:00 Sunday in New York is already Monday in UTC: Monday's session has not opened.
    sunday_evening = datetime(2026, 11, 23, 2, tzinfo=UTC)
    assert last_completed_session(sunday_evening) == date(2026, 11, 20)


def test_simulated_bars_have_no_bars_on_exchange_holidays() -> None:
    dates = set(simulate_bars("TSLA", date(2026, 12, 31), 400)["date"].dt.date)
    for holiday in (date(2025, 11, 27), date(2025, 12, 25), date(2026, 1, 1),
                    date(2026, 7, 3), date(2026, 11, 26), date(2026, 12, 25)):
        assert holiday not in dates
    assert date(2026, 11, 27) in dates  # Black Friday trades (early close)
    assert max(dates) == date(2026, 12, 31)


def _write(tmp_path: Path, text: str, name: str = "TSLA.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_in_yahoo_format_is_read_newest_first_or_not(tmp_path: Path) -> None:
    path = _write(tmp_path, "Date,Open,High,Low,Close,Adj Close,Volume\n"
                            "2024-01-03,10,11,9,10.5,10.4,1000\n"
                            "2024-01-02,9,10,8,9.5,9.4,900\n")
    frame = read_csv_bars(path)
    assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert frame["date"].is_monotonic_increasing
    assert frame["close"].tolist() == [9.5, 10.5]


def test_csv_headers_are_case_insensitive(tmp_path: Path) -> None:
    path = _write(tmp_path, "date,OPEN,high,Low,close,VOLUME\n2024-01-02,9,10,8,9.5,900\n")
    assert read_csv_bars(path)["open"].iloc[0] == 9.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "file is empty"),
        ("Date,Open,High,Low,Close,Volume\n", "no rows"),
        ("Date,Open,High,Low,Volume\n2024-01-02,1,2,0.5,10\n", "missing column.*Close"),
        ("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n"
         "2024-01-03,1,2,0.5,n/a,10\n", r"row 3: column \"Close\" is 'n/a', expected a number"),
        ("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n"
         "2024-01-02,1,2,0.5,1.6,10\n", "row 3: date 2024-01-02 repeats row 2"),
        ("Date,Open,High,Low,Close,Volume\nyesterday,1,2,0.5,1.5,10\n",
         r"row 2: column \"Date\" is 'yesterday'"),
        ("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n"
         "2024-01-03,1,inf,0.5,1.5,10\n", r"row 3: column \"High\" is 'inf', expected a number"),
        ("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,-Infinity\n",
         r"row 2: column \"Volume\" is '-Infinity', expected a number"),
        ("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1e999,10\n",
         r"row 2: column \"Close\" is '1e999', expected a number"),
    ],
)
def test_bad_csv_files_name_file_and_row(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(BarDataError, match=message) as info:
        read_csv_bars(path)
    assert str(path) in str(info.value)


HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
GOOD_ROW = "2024-01-02,10,11,9,10.5,10.4,1000\n"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        # The four files of the fault-injection pass: each overwrote the last good copy.
        ("2024-01-03,1e300,1.1e300,9e299,1e300,1e300,1000\n",
         r"row 3: column \"Open\" is '1e300', above the ceiling of 10000000"),
        ("2024-01-03,10,11,9,10.5,10.4,-5\n", r"row 3: column \"Volume\" is '-5', below 0"),
        ("2024-01-03,10,11,9,10.5,10.4,1e300\n",
         r"row 3: column \"Volume\" is '1e300', above the ceiling of 1e\+11"),
        ("2099-01-02,10,11,9,10.5,10.4,1000\n",
         r"row 3: date 2099-01-02 is after the current XNYS session"),
        # Refusals that named only the symbol and a date.
        ("2024-01-03,0,11,9,10.5,10.4,1000\n", r"row 3: column \"Open\" is '0', not above 0"),
        ("2024-01-03,10,9.5,9,10.5,10.4,1000\n", r"row 3: High 9.5 is below Open/Close"),
        ("2024-01-03,10,11,10.2,10.5,10.4,1000\n", r"row 3: Low 10.2 is above Open/Close"),
        # Any price column is named, not only Open.
        ("2024-01-03,10,11,9,-1,10.4,1000\n", r"row 3: column \"Close\" is '-1', not above 0"),
        ("2024-01-03,10,2e7,9,10.5,10.4,1000\n",
         r"row 3: column \"High\" is '2e7', above the ceiling of 10000000"),
    ],
)
def test_out_of_bounds_rows_are_refused_with_file_and_row(tmp_path: Path, bad_row: str,
                                                          message: str) -> None:
    path = _write(tmp_path, HEADER + GOOD_ROW + bad_row)
    with pytest.raises(BarDataError, match=message) as info:
        read_csv_bars(path)
    assert str(info.value).startswith(f"{path} row 3: ")


def test_a_row_dated_after_the_current_session_is_refused_by_the_calendar(tmp_path: Path
                                                                         ) -> None:
    # Sunday 2026-11-22: the current session is Friday 20th, so Saturday's row is in the future.
    path = _write(tmp_path, HEADER + "2026-11-20,10,11,9,10.5,10.4,1000\n"
                            "2026-11-21,10,11,9,10.5,10.4,1000\n")
    with pytest.raises(BarDataError, match="row 3: date 2026-11-21 is after the current XNYS "
                                           "session 2026-11-20"):
        read_csv_bars(path, today=date(2026, 11, 22))
    assert len(read_csv_bars(path, today=date(2026, 11, 23))) == 2


def test_out_of_bounds_bars_from_any_source_are_refused_naming_the_date() -> None:
    bars = simulate_bars("TSLA", AS_OF)
    huge = bars.copy()
    huge.loc[12, ["open", "high", "low", "close"]] *= 1e300
    problems = " | ".join(bar_problems(huge))
    assert f"above the price ceiling, first on {bars['date'].iloc[12].date()}" in problems
    negative = bars.copy()
    negative.loc[13, "volume"] = -5
    assert "negative or above the volume ceiling" in " | ".join(bar_problems(negative))
    future = bars.copy()
    future.loc[len(future) - 1, "date"] = pd.Timestamp("2099-01-02")
    assert "after the current XNYS session" in " | ".join(bar_problems(future))


def test_missing_csv_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(BarDataError, match="file not found.*TRADING_CSV_DIR"):
        read_csv_bars(tmp_path / "NOPE.csv")


def test_bar_problems_catch_each_rule() -> None:
    bars = simulate_bars("TSLA", AS_OF)
    broken = bars.copy()
    broken.loc[10, "close"] = np.nan
    broken.loc[20, "low"] = -1.0
    broken.loc[30, "high"] = broken.loc[30, "low"] / 2
    broken.loc[40, "date"] = broken.loc[39, "date"]
    problems = " | ".join(bar_problems(broken))
    assert "missing values" in problems
    assert "non-positive" in problems
    assert "high below" in problems
    assert "strictly increasing" in problems
    assert "at least 200" in bar_problems(bars.tail(150))[0]


@pytest.mark.parametrize("column", ["high", "volume"])
def test_bar_problems_refuse_infinite_values(column: str) -> None:
    bars = simulate_bars("TSLA", AS_OF)
    broken = bars.copy()
    broken.loc[15, column] = np.inf
    problems = bar_problems(broken)
    assert problems == [f"1 bar(s) with missing values or infinities, first on "
                        f"{broken['date'].iloc[15].date()}"]


def test_checked_bars_pass_good_bars_and_name_the_source_of_bad_ones() -> None:
    bars = simulate_bars("TSLA", AS_OF)
    assert checked_bars(bars, "TSLA", "csv") is bars
    with pytest.raises(BarDataError, match=r"^ibkr bars for TSLA failed sanity checks: "
                                           r"only 150 bars"):
        checked_bars(bars.tail(150), "TSLA", "ibkr")
