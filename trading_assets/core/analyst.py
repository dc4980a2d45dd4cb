"""The deterministic rules analyst: the offline default, labelled provider=rules everywhere."""

from __future__ import annotations

from trading_assets.core.signal import (
    Action,
    AnalysisRequest,
    TradingSignal,
    Trend,
    level_for_score,
)

RULES_MODEL = "rules-v1"
RULES_PROMPT_VERSION = "rules-v1"
# Holding horizons in trading days: a call the weekly picture backs is a swing trade over
# about a month (the 4-ATR target needs time); a daily-only call, or a HOLD, is looked at
# again within about a week.
AGREEING_HORIZON_DAYS = 20
SHORT_HORIZON_DAYS = 5


def _num(summary: dict[str, float | None], key: str) -> float | None:
    value = summary.get(key)
    return None if value is None else float(value)


def trend_of(summary: dict[str, float | None]) -> Trend:
    """UP when close > SMA 50 > SMA 200 (or above both), DOWN mirrored, else SIDEWAYS."""
    close, sma50, sma200 = _num(summary, "close"), _num(summary, "sma_50"), _num(summary, "sma_200")
    if close is None or sma50 is None:
        return Trend.SIDEWAYS
    if sma200 is None:
        return Trend.UP if close > sma50 * 1.01 else Trend.DOWN if close < sma50 * 0.99 \
            else Trend.SIDEWAYS
    if close > sma50 > sma200:
        return Trend.UP
    if close < sma50 < sma200:
        return Trend.DOWN
    return Trend.SIDEWAYS


def _score(summary: dict[str, float | None], found: list[str], weight: float,
           timeframe: str) -> float:
    """Score one timeframe from -1 (bearish) to +1 (bullish), appending the reasons, each
    labelled with its timeframe in words (a daily RSI 62 beside a weekly RSI 37 says which)."""
    factors: list[str] = []
    score = 0.0
    close = _num(summary, "close")
    trend = trend_of(summary)
    if trend is Trend.UP:
        score += 0.4
        factors.append("price above a rising SMA 50 and SMA 200 (trend up)")
    elif trend is Trend.DOWN:
        score -= 0.4
        factors.append("price below a falling SMA 50 and SMA 200 (trend down)")
    rsi = _num(summary, "rsi_14")
    if rsi is not None:
        if rsi >= 70:
            score -= 0.3
            factors.append(f"RSI {rsi:.0f}: overbought")
        elif rsi <= 30:
            score += 0.3
            factors.append(f"RSI {rsi:.0f}: oversold")
        elif rsi >= 55:
            score += 0.15
            factors.append(f"RSI {rsi:.0f}: positive momentum")
        elif rsi <= 45:
            score -= 0.15
            factors.append(f"RSI {rsi:.0f}: negative momentum")
    hist = _num(summary, "macd_hist")
    if hist is not None:
        score += 0.2 if hist > 0 else -0.2
        factors.append(f"MACD histogram {'positive' if hist > 0 else 'negative'} ({hist:.2f})")
    upper, lower = _num(summary, "bb_upper"), _num(summary, "bb_lower")
    if close is not None and upper is not None and lower is not None and upper > lower:
        position = (close - lower) / (upper - lower)
        if position > 1:
            score -= 0.1
            factors.append("close above the upper Bollinger band (stretched)")
        elif position < 0:
            score += 0.1
            factors.append("close below the lower Bollinger band (stretched down)")
    found += [f"{timeframe}: {factor}" for factor in factors]
    return max(-1.0, min(1.0, score)) * weight


def rules_signal(request: AnalysisRequest, position_size_pct: float = 5.0) -> TradingSignal:
    """Combine daily (weight 1) and weekly (weight 0.5) evidence into a full TradingSignal."""
    daily, weekly = request.daily_summary, request.weekly_summary
    factors: list[str] = []
    daily_score = _score(daily, factors, 1.0, "daily")
    weekly_score = _score(weekly, factors, 0.5, "weekly")
    combined = (daily_score + weekly_score) / 1.5
    agree = daily_score * weekly_score > 0  # both bullish or both bearish
    close = _num(daily, "close")
    atr = _num(daily, "atr_14")
    if close is None or close <= 0:
        raise ValueError(f"{request.symbol}: no valid latest close to analyse")
    if combined >= 0.35:
        action = Action.BUY
    elif combined <= -0.35:
        action = Action.SELL
    else:
        action = Action.HOLD
    score = int(round(min(95, 30 + abs(combined) * 70))) if action is not Action.HOLD \
        else int(round(60 - abs(combined) * 40))
    risk = (atr or close * 0.02) * 2.0
    entry = round(close, 2)
    if action is Action.BUY:
        stop, target = round(entry - risk, 2), round(entry + 2 * risk, 2)
    elif action is Action.SELL:
        stop, target = round(entry + risk, 2), round(entry - 2 * risk, 2)
    else:
        stop = target = None
    if stop is not None and stop <= 0:
        stop = round(entry * 0.5, 2)
    if target is not None and target <= 0:
        target = round(entry * 0.5, 2)
    bars = request.last_bars[-20:]
    lows = [float(b["low"]) for b in bars if b.get("low") is not None]  # type: ignore[arg-type]
    highs = [float(b["high"]) for b in bars if b.get("high") is not None]  # type: ignore[arg-type]
    horizon = AGREEING_HORIZON_DAYS if agree and action is not Action.HOLD \
        else SHORT_HORIZON_DAYS
    reasoning = (
        f"Rules analyst (no language model): combined score {combined:+.2f} from daily and "
        f"weekly indicators -> {action.value}. "
        + ("Stop at 2 ATR, target at 4 ATR. " if action is not Action.HOLD else "")
        + f"Daily and weekly {'agree' if agree else 'do not agree'}: horizon {horizon} "
          "trading days. "
        + ("Input bars are SIMULATED." if request.simulated else f"Data: {request.data_source}.")
    )
    return TradingSignal(
        symbol=request.symbol,
        action=action,
        confidence_level=level_for_score(score),
        confidence_score=score,
        reasoning=reasoning,
        key_factors=factors or ["no indicator readings past warm-up"],
        trend=trend_of(daily),
        support=round(min(lows), 2) if lows else None,
        resistance=round(max(highs), 2) if highs else None,
        entry_price=entry if action is not Action.HOLD else None,
        stop_loss=stop,
        take_profit=target,
        position_size_pct=position_size_pct if action is not Action.HOLD else 0.0,
        timeframe="daily+weekly",
        provider="rules",
        model=RULES_MODEL,
        prompt_version=RULES_PROMPT_VERSION,
        bar_date=request.bar_date,
        horizon_days=horizon,
        timeframes_agree=agree,
    )
