"""Daily OHLCV bars: the simulated source, the CSV reader and the sanity rules both must pass."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

from trading_assets.core.calendar import (
    EXCHANGE,
    current_session,
    sessions_between,
)

if TYPE_CHECKING:  # numpy and pandas load on first use, not when the definitions load
    import numpy as np
    import pandas as pd

BAR_COLUMNS = ["date", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
MIN_ROWS_FOR_SMA_200 = 200
# Sane bounds for any source. A share price above $10 million is ten times the dearest US share
# (BRK.A, under $1 million): a unit or scaling error such as prices x1e300, which would
# otherwise reach the charts as infinite axis limits. Daily volume above 1e11 shares is about
# fifty times the busiest day any US listing has had.
MAX_PRICE = 10_000_000.0
MAX_VOLUME = 1e11
# The simulated history starts here for every symbol so that the bar for a given date is the
# same whichever day the simulation runs: replays and scorecards see a stable past.
_SIMULATION_EPOCH = date(2012, 1, 2)


class BarDataError(ValueError):
    """Bars that cannot be used: the message names the file and row where it can."""


def _seed(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")


@lru_cache(maxsize=8)
def _sessions_until(as_of: date) -> pd.DatetimeIndex:
    """Exchange sessions from the simulation epoch to `as_of`: no bars on weekends or holidays
    (Thanksgiving, Christmas ...). Every symbol of a run shares the one result."""
    import pandas as pd

    sessions = sessions_between(_SIMULATION_EPOCH, as_of)
    return pd.DatetimeIndex(sessions.to_numpy().astype("datetime64[ns]"))


def simulate_bars(symbol: str, as_of: date, n_days: int = 400) -> pd.DataFrame:
    """Deterministic, realistic daily bars for `symbol` ending at `as_of` (labelled simulated).

    A geometric random walk whose volatility switches between calm and stormy regimes, with
    occasional overnight gaps and volume that rises with absolute returns.
    """
    import numpy as np
    import pandas as pd

    dates = _sessions_until(as_of)
    if len(dates) < n_days:
        raise BarDataError(f"as-of date {as_of} leaves fewer than {n_days} simulated bars")
    n = len(dates)
    seed = _seed(symbol)

    def stream(k: int) -> np.random.Generator:
        # One generator per component: a longer history extends each stream without changing
        # its prefix, so adding days never rewrites the past.
        return np.random.default_rng([seed % 2**63, k])

    start_price = 20.0 + (_seed(symbol) % 480)
    calm, stormy = 0.012, 0.032
    switches = stream(1).random(n) < 0.02
    regime = np.cumsum(switches) % 2
    vol = np.where(regime == 1, stormy, calm) * stream(2).uniform(0.8, 1.2, n)
    drift = 0.0003 + 0.0002 * math.sin(_seed(symbol) % 7)
    gaps = np.where(stream(3).random(n) < 0.03, stream(4).normal(0, 0.035, n), 0.0)
    overnight = stream(5).normal(0, 0.25, n) * vol + gaps
    intraday = stream(6).normal(drift, 1.0, n) * vol
    # A slow pull towards the symbol's anchor price keeps 15 years of walk in a plausible range.
    anchor = math.log(start_price)
    steps = overnight + intraday
    log_close = np.empty(n)
    level = anchor
    for i in range(n):
        level += steps[i] - 0.004 * (level - anchor)
        log_close[i] = level
    close = np.exp(log_close)
    open_ = close * np.exp(-intraday)
    body_high = np.maximum(open_, close)
    body_low = np.minimum(open_, close)
    high = body_high * (1 + np.abs(stream(7).normal(0, 0.5, n)) * vol)
    low = body_low * (1 - np.abs(stream(8).normal(0, 0.5, n)) * vol)
    base_volume = 2e5 + (_seed(symbol) % 50) * 2e5
    activity = 1 + 25 * np.abs(intraday + overnight)
    volume = base_volume * np.exp(stream(9).normal(0, 0.3, n)) * activity
    frame = pd.DataFrame(
        {
            "date": dates.astype("datetime64[ns]"),
            "open": open_.round(2),
            "high": high.round(2),
            "low": low.round(2),
            "close": close.round(2),
            "volume": volume.round(0),
        }
    )
    # Rounding can push open/close a cent outside the wicks; keep the bars self-consistent.
    frame["high"] = frame[["high", "open", "close"]].max(axis=1)
    frame["low"] = frame[["low", "open", "close"]].min(axis=1)
    return frame.tail(n_days).reset_index(drop=True)


def csv_column_map(spec: str) -> dict[str, str]:
    """TRADING_CSV_COLUMNS ("date=Data,close=Zamkniecie") as {our column: source header};
    ValueError naming the bad part and a good example (checked at start-up, not mid-run)."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        ours, eq, theirs = (piece.strip() for piece in item.partition("="))
        problem = (
            f"{item!r} has no '='" if not eq
            else f"{ours!r} is not one of {', '.join(BAR_COLUMNS)}"
            if ours.lower() not in BAR_COLUMNS
            else f"{item!r} gives no header of the source" if not theirs
            else f"{item!r} maps {ours.lower()} a second time" if ours.lower() in mapping
            else "")
        if problem:
            raise ValueError(f"TRADING_CSV_COLUMNS={spec!r}: {problem}; use column=header pairs "
                             "such as date=Data,close=Zamkniecie.")
        mapping[ours.lower()] = theirs
    return mapping


def read_csv_bars(path: Path, today: date | None = None,
                  columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read Date, Open, High, Low, Close, Volume (any case; Adj Close ignored) from a CSV export.

    Every problem is reported with the file and the line number as a spreadsheet shows it;
    see parse_csv_bars for `today` and `columns`.
    """
    if not path.exists():
        raise BarDataError(
            f"{path}: file not found. Put a CSV export there or set TRADING_CSV_DIR."
        )
    if path.stat().st_size == 0:
        raise BarDataError(f"{path}: file is empty; expected a header and daily bars.")
    return parse_csv_bars(path, str(path), today, columns)


def parse_csv_bars(source: Path | IO[bytes], where: str, today: date | None = None,
                   columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Bars from daily CSV text (a file or a download), every problem named `where` row N.

    `columns` maps our column names (date, open, ...) to the source's headers when they differ
    (a provider in another language); `today` (default: now in New York) bounds the bar dates
    through the exchange calendar."""
    import numpy as np
    import pandas as pd

    try:
        raw = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BarDataError(f"{where}: not a readable CSV file ({exc}).") from exc
    by_lower = {str(col).strip().lower(): col for col in raw.columns}
    header = {col: (columns or {}).get(col, col).strip().lower() for col in BAR_COLUMNS}
    missing = [col for col in BAR_COLUMNS if header[col] not in by_lower]
    if missing:
        found = ", ".join(str(c) for c in raw.columns) or "nothing"
        raise BarDataError(
            f"{where}: missing column(s) {', '.join(header[c].title() for c in missing)}; "
            f"found {found}. Expected Date, Open, High, Low, Close, Volume (or name the "
            "source's headers in TRADING_CSV_COLUMNS)."
        )
    if raw.empty:
        raise BarDataError(f"{where}: has a header but no rows of bars.")
    frame = pd.DataFrame({col: raw[by_lower[header[col]]].str.strip() for col in BAR_COLUMNS})
    line_of = {i: i + 2 for i in range(len(frame))}  # line 1 is the header
    dates = pd.to_datetime(frame["date"], errors="coerce", format="mixed")
    for i in np.flatnonzero(dates.isna().to_numpy()):
        raise BarDataError(
            f"{where} row {line_of[i]}: column \"Date\" is {frame['date'].iat[i]!r}, "
            "expected a date such as 2024-01-31."
        )
    out = pd.DataFrame({"date": dates.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")})
    for col in BAR_COLUMNS[1:]:
        values = pd.to_numeric(frame[col].str.replace(",", "", regex=False), errors="coerce")
        # "inf", "Infinity" and 1e999 parse as infinity: as unusable as text, so reported alike.
        for i in np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float))):
            raise BarDataError(
                f"{where} row {line_of[i]}: column \"{col.title()}\" is {frame[col].iat[i]!r}, "
                "expected a number."
            )
        out[col] = values.astype(float)
    latest = current_session(today)
    bad = _out_of_bounds(out, latest).to_numpy()
    for i in np.flatnonzero(bad)[:1]:
        fault = _row_fault(out.iloc[[i]], frame.iloc[i], latest)
        raise BarDataError(f"{where} row {line_of[i]}: {fault}")
    duplicated = out["date"].duplicated(keep="first").to_numpy()
    for i in np.flatnonzero(duplicated):
        first = int(np.flatnonzero((out["date"] == out["date"].iat[i]).to_numpy())[0])
        raise BarDataError(
            f"{where} row {line_of[i]}: date {out['date'].iat[i].date()} repeats row "
            f"{line_of[first]}; each date must appear once."
        )
    return out.sort_values("date").reset_index(drop=True)


def _bound_checks(bars: pd.DataFrame, latest: date) -> list[tuple[str, pd.Series, str]]:
    """The bounds every bar of every source keeps, one check per rule and column: the rule as
    bar_problems words it, the mask of offending rows, and what is wrong with such a row as a
    template over its CSV text ({open!r} ...; {day} is its parsed date). NaN compares False
    here; the finiteness rule catches it."""
    import pandas as pd

    body = "Open/Close ({open}, {close})"
    checks = []
    for col in PRICE_COLUMNS:
        cell = f'column "{col.title()}" is {{{col}!r}}'
        checks += [
            ("with non-positive prices", bars[col] <= 0, f"{cell}, not above 0."),
            ("above the price ceiling", bars[col] > MAX_PRICE,
             f"{cell}, above the ceiling of {MAX_PRICE:.0f} for a share price."),
        ]
    volume_rule = "with volume negative or above the volume ceiling"
    return [
        *checks,
        (volume_rule, bars["volume"] < 0, 'column "Volume" is {volume!r}, below 0.'),
        (volume_rule, bars["volume"] > MAX_VOLUME,
         f'column "Volume" is {{volume!r}}, above the ceiling of {MAX_VOLUME:.0e} shares a day.'),
        ("with high below open/close", bars["high"] < bars[["open", "close"]].max(axis=1),
         f"High {{high}} is below {body}."),
        ("with low above open/close", bars["low"] > bars[["open", "close"]].min(axis=1),
         f"Low {{low}} is above {body}."),
        (f"dated after the current {EXCHANGE} session {latest}",
         pd.to_datetime(bars["date"]) > pd.Timestamp(latest),
         f"date {{day}} is after the current {EXCHANGE} session {latest}; a bar cannot be "
         "dated in the future."),
    ]


def _bound_masks(bars: pd.DataFrame, latest: date) -> dict[str, pd.Series]:
    """The offending rows per rule of _bound_checks (a rule may check several columns)."""
    masks: dict[str, pd.Series] = {}
    for rule, bad, _ in _bound_checks(bars, latest):
        masks[rule] = masks[rule] | bad if rule in masks else bad
    return masks


def _out_of_bounds(bars: pd.DataFrame, latest: date) -> pd.Series:
    masks = list(_bound_masks(bars, latest).values())
    combined = masks[0]
    for mask in masks[1:]:
        combined = combined | mask
    return combined


def _row_fault(values: pd.DataFrame, text: pd.Series, latest: date) -> str:
    """What is wrong with one row (`values`, one parsed row; `text`, its CSV cells) that
    _out_of_bounds flagged, in the file's own words: the first check it fails."""
    day = values["date"].iat[0].date()
    return next(fault.format(**text, day=day) for _, bad, fault in _bound_checks(values, latest)
                if bad.iat[0])


def bar_problems(bars: pd.DataFrame, min_rows: int = MIN_ROWS_FOR_SMA_200,
                 today: date | None = None) -> list[str]:
    """Sanity rules for daily bars; an empty list means the bars are usable. `today` (default:
    now in New York) bounds the bar dates through the exchange calendar."""
    problems: list[str] = []
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        return [f"missing columns: {', '.join(missing)}"]
    if len(bars) < min_rows:
        problems.append(f"only {len(bars)} bars; at least {min_rows} needed for SMA 200")
    if bars.empty:
        return problems
    import numpy as np
    import pandas as pd

    # Infinity passes isna() and later breaks the charts' axis limits: refused with NaN.
    values = bars[PRICE_COLUMNS + ["volume"]].to_numpy(dtype=float, na_value=np.nan)
    nan_rows = pd.Series(~np.isfinite(values).all(axis=1), index=bars.index)
    if nan_rows.any():
        problems.append(f"{int(nan_rows.sum())} bar(s) with missing values or infinities, "
                        f"first on {_first_date(bars, nan_rows)}")
    for rule, bad in _bound_masks(bars, current_session(today)).items():
        bad = bad & ~nan_rows  # an infinity is reported once, as such
        if bad.any():
            problems.append(f"{int(bad.sum())} bar(s) {rule}, first on {_first_date(bars, bad)}")
    if not bars["date"].is_monotonic_increasing or bars["date"].duplicated().any():
        problems.append("dates are not strictly increasing")
    return problems


def checked_bars(bars: pd.DataFrame, symbol: str, source: str) -> pd.DataFrame:
    """`bars` unchanged when they pass bar_problems, else BarDataError naming every problem
    (bad bars are refused before they overwrite the last good copy in the store)."""
    problems = bar_problems(bars)
    if problems:
        raise BarDataError(f"{source} bars for {symbol} failed sanity checks: "
                           + "; ".join(problems))
    return bars


def _first_date(bars: pd.DataFrame, mask: pd.Series) -> str:
    import pandas as pd

    return str(pd.Timestamp(bars.loc[mask, "date"].iloc[0]).date())


def last_bars_records(bars: pd.DataFrame, n: int = 50) -> list[dict[str, object]]:
    """The last `n` bars as JSON-friendly records, oldest first (what an analyst is shown)."""
    import pandas as pd

    tail = bars[BAR_COLUMNS].tail(n)
    return [
        {"date": str(pd.Timestamp(row.date).date()), "open": row.open, "high": row.high,
         "low": row.low, "close": row.close, "volume": row.volume}
        for row in tail.itertuples(index=False)
    ]


def bars_digest(bars: pd.DataFrame) -> str:
    """A short fingerprint of the bars' values: the same bars give the same digest, so storing
    them again names the same version."""
    import pandas as pd

    rows = pd.util.hash_pandas_object(bars, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()[:16]
