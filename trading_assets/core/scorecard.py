"""The signal scorecard: hit rates with intervals, calibration, returns and A/B differences.

Pure aggregation over the outcome rows of trading_assets.core.outcomes (no I/O), plus the
PNG plots. `scorecard_tables` is the one entry point the Dagster asset and the Gradio app
share.

Statistics, all at one horizon (5 bars by default):
- a hit rate comes with a 95% Wilson score interval (sound for small samples and rates near
  0 or 1, unlike the plain normal interval);
- an A/B difference of hit rates comes with Newcombe's hybrid score interval (method 10,
  built from the two Wilson intervals). It treats the arms as independent samples; the arms
  are paired on the same dates, which usually makes the true interval narrower, so this one
  is conservative;
- the "base rate" of an action is how often it would have been right on the same analyst's
  dates whatever was said: the share of up moves for BUY, down moves for SELL, moves inside
  the band for HOLD. A hit rate is only worth something above its base rate;
- a model's signals dated on or before its training cutoff are counted apart from those after
  it (by_training_period): on the former the model may have read what followed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and pandas load on first use, not when the definitions load
    import pandas as pd

from trading_assets.core.outcomes import HORIZONS, STATED, direction_hit, simulated_count
from trading_assets.core.training import BEFORE, NO_TRAINING, PERIODS, UNKNOWN

Z_95 = 1.959963984540054
ACTIONS = ("BUY", "SELL", "HOLD")
LEVELS = ("HIGH", "MEDIUM", "LOW")
# Stated confidence buckets for calibration: [0,50) is one bucket because LOW is rare and
# thin; above that, ten points each, and 100 belongs to the top bucket.
CONFIDENCE_EDGES = (0, 50, 60, 70, 80, 90, 101)
MAX_AB_PAIRS = 20
# Every scorecard table's title, in the order the app shows them; the Dagster metadata of
# signal_scorecard uses the same words (the summary there is its headline numbers instead).
SCORECARD_TABLE_TITLES = {
    "summary": "Summary (rates are fractions: 0.53 = 53%)",
    "by_action": "Hit rate by action, against its base rate on the same dates",
    "by_confidence": "Hit rate by stated confidence level",
    "by_analyst": "Hit rate by analyst set-up (provider, model, prompt version, variant)",
    "calibration": "Calibration: stated confidence bucket vs realised hit rate",
    "returns": "Forward returns by action vs buy-and-hold on the same dates",
    "trades": "BUY/SELL: stop or target first, R multiple, adverse excursion",
    "ab": "A/B: hit-rate difference on the dates both set-ups called (Newcombe 95%)",
    "by_training_period": "Hit rate on dates before vs after the model's training cutoff "
                          "(before: the model may remember what followed)",
    "stated_horizon": "Hit rate at the horizon each signal stated, by whether daily and "
                      "weekly agreed",
}
AGREEMENT = {True: "agree", False: "disagree"}


def wilson_interval(hits: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval of hits/n; (nan, nan) for no observations."""
    if n <= 0:
        return (math.nan, math.nan)
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The interval always contains p; at 0 % or 100 % rounding can leave a bound a hair past it,
    # which a plot's error bars then reject as negative.
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def newcombe_difference(hits_a: int, n_a: int, hits_b: int, n_b: int,
                        z: float = Z_95) -> tuple[float, float, float]:
    """Difference p_a - p_b with Newcombe's hybrid score 95% interval (independent arms)."""
    if n_a <= 0 or n_b <= 0:
        return (math.nan, math.nan, math.nan)
    p_a, p_b = hits_a / n_a, hits_b / n_b
    low_a, high_a = wilson_interval(hits_a, n_a, z)
    low_b, high_b = wilson_interval(hits_b, n_b, z)
    diff = p_a - p_b
    lower = diff - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    upper = diff + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return (diff, max(-1.0, lower), min(1.0, upper))


def rate_text(value: object) -> str:
    """A rate as a percentage for people, "n/a" where it is undefined (NaN: nothing to count)."""
    number = float(value)  # type: ignore[arg-type]
    return "n/a" if math.isnan(number) else f"{number:.1%}"


def confidence_bucket(score: float | None) -> str | None:
    """The calibration bucket label of a 0-100 confidence score ("0-49", "50-59", "90-100")."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return None
    for low, high in zip(CONFIDENCE_EDGES, CONFIDENCE_EDGES[1:], strict=False):
        if low <= score < high:
            return f"{low}-{high - 1}"
    return None


def analyst_label(provider: str, model: str, prompt_version: str, variant: str) -> str:
    """Short name of one analyst set-up, e.g. 'openai gpt-4o-mini signal_v1@ab12 [images]'."""
    parts = [provider, model] + ([prompt_version] if prompt_version and
                                 prompt_version != model else [])
    return " ".join(parts) + (f" [{variant}]" if variant else "")


def with_analyst(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The outcomes with an `analyst` column (live and replay runs of one set-up pooled)."""
    frame = outcomes.copy()
    for column in ("provider", "model", "prompt_version", "variant"):
        frame[column] = frame[column].fillna("").astype(str)
    frame["analyst"] = [analyst_label(*values) for values in zip(
        frame["provider"], frame["model"], frame["prompt_version"], frame["variant"],
        strict=True)]
    return frame


def with_training_period(frame: pd.DataFrame) -> pd.DataFrame:
    """`training_period` filled for outcomes stored before it existed: the rules analyst has
    none, a model's is unknown."""
    frame = frame.copy()
    missing = frame["training_period"].isna()
    rules = frame["provider"].astype(str) == "rules"
    frame.loc[missing & rules, "training_period"] = NO_TRAINING
    frame.loc[missing & ~rules, "training_period"] = UNKNOWN
    frame["training_period"] = frame["training_period"].astype(str)
    return frame


def training_period_warning(outcomes: pd.DataFrame) -> str:
    """What the CLI, the asset metadata and the app warn about: model signals dated inside
    their model's training period, and model signals whose cutoff is unknown; "" if none."""
    if outcomes.empty:
        return ""
    frame = with_training_period(outcomes)
    models = frame[frame["training_period"] != NO_TRAINING]
    inside = int((models["training_period"] == BEFORE).sum())
    unknown = int((models["training_period"] == UNKNOWN).sum())
    parts = []
    if inside:
        dates = models.loc[models["training_period"] == BEFORE, "bar_date"]
        parts.append(f"{inside} of {len(models)} model signal(s) ({dates.min().date()} .. "
                     f"{dates.max().date()}) are dated on or before their model's training "
                     "cutoff: the model may have read what happened next, so judge it on "
                     "the 'after cutoff' rows of by_training_period.")
    if unknown:
        parts.append(f"{unknown} model signal(s) come from a model whose training cutoff is "
                     "unknown: set LLM_TRAINING_CUTOFF (YYYY-MM-DD).")
    return ("WARNING: " + " ".join(parts)) if parts else ""


def _rate_row(hits: int, n: int) -> dict[str, object]:
    low, high = wilson_interval(hits, n)
    return {"n": n, "hits": hits, "hit_rate": hits / n if n else math.nan,
            "ci_low": low, "ci_high": high}


def _scored(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    return frame[frame[f"hit_{horizon}"].notna()]


def _base_rate(frame: pd.DataFrame, action: str, horizon: int) -> float:
    """How often `action` would have been right on these dates, whatever was said."""
    import numpy as np

    returns = frame[f"fwd_return_{horizon}"].to_numpy(dtype=float)
    bands = frame[f"hold_band_{horizon}"].to_numpy(dtype=float)
    if len(returns) == 0:
        return math.nan
    return float(np.mean([direction_hit(action, r, b) for r, b in zip(returns, bands,
                                                                       strict=True)]))


def hit_rates(frame: pd.DataFrame, by: list[str], horizon: int,
              order: dict[str, Iterable[str]] | None = None) -> pd.DataFrame:
    """Hit rate with its Wilson interval for each group of `by` (scored rows only)."""
    import pandas as pd

    scored = _scored(frame, horizon)
    rows = []
    for key, group in scored.groupby(by, sort=True, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        hits = int(group[f"hit_{horizon}"].astype(bool).sum())
        rows.append({**dict(zip(by, values, strict=True)), **_rate_row(hits, len(group))})
    table = pd.DataFrame(rows, columns=[*by, "n", "hits", "hit_rate", "ci_low", "ci_high"])
    for column, values in (order or {}).items():
        rank = {value: i for i, value in enumerate(values)}
        table = table.sort_values(column, key=lambda s, rank=rank: s.map(rank), kind="stable")
    return table.reset_index(drop=True)


def by_action_table(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Hit rate per analyst and action, with the action's base rate and its share of calls."""
    table = hit_rates(frame, ["analyst", "action"], horizon, {"action": ACTIONS})
    scored = _scored(frame, horizon)
    totals = frame.groupby("analyst").size()
    table["base_rate"] = [_base_rate(scored[scored["analyst"] == a], act, horizon)
                          for a, act in zip(table["analyst"], table["action"], strict=True)]
    table["share"] = [float((frame["analyst"] == a).mul(frame["action"] == act).sum())
                      / totals[a] for a, act in zip(table["analyst"], table["action"],
                                                    strict=True)]
    return table.sort_values(["analyst"], kind="stable").reset_index(drop=True)


def by_analyst_table(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """One row per analyst set-up: counts, hit rate, share of HOLDs, mean stated confidence."""
    import pandas as pd

    rates = hit_rates(frame, ["analyst"], horizon).set_index("analyst")
    rows = []
    for analyst, group in frame.groupby("analyst", sort=True):
        first = group.iloc[0]
        rate = rates.loc[analyst] if analyst in rates.index else None
        rows.append({
            "analyst": analyst, "provider": first["provider"], "model": first["model"],
            "prompt_version": first["prompt_version"], "variant": first["variant"],
            "signals": len(group), "live": int((group["mode"] == "live").sum()),
            "replay": int((group["mode"] == "replay").sum()),
            "pending": int(group[f"hit_{horizon}"].isna().sum()),
            **(_rate_row(int(rate["hits"]), int(rate["n"])) if rate is not None
               else _rate_row(0, 0)),
            "hold_share": float((group["action"] == "HOLD").mean()),
            "mean_confidence": float(group["confidence_score"].mean()),
        })
    return pd.DataFrame(rows)


def calibration_table(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Stated confidence buckets against the realised hit rate, per analyst.

    Read the stated score as the probability of being right: a calibrated analyst's hit rate
    sits near the bucket's mean stated confidence (gap near 0) and rises with it.
    """
    scored = _scored(frame, horizon).copy()
    scored["bucket"] = [confidence_bucket(s) for s in scored["confidence_score"]]
    scored = scored[scored["bucket"].notna()]
    labels = [confidence_bucket(low) for low in CONFIDENCE_EDGES[:-1]]
    table = hit_rates(scored, ["analyst", "bucket"], horizon, {"bucket": labels})
    means = scored.groupby(["analyst", "bucket"])["confidence_score"].mean() / 100.0
    table.insert(2, "mean_stated", [float(means[(a, b)]) for a, b in
                                    zip(table["analyst"], table["bucket"], strict=True)])
    table["gap"] = table["hit_rate"] - table["mean_stated"]
    return table.sort_values(["analyst"], kind="stable").reset_index(drop=True)


def returns_table(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Mean and median forward return per analyst and action, against buy-and-hold.

    buy_hold_mean is the mean forward return over all of the analyst's scored dates (holding
    through every one of them); excess = the action's mean - buy_hold_mean. traded_mean is
    the return as traded: long for BUY, short for SELL, flat for HOLD; on the ALL row that is
    the whole signal-following strategy, to set against buy_hold_mean.
    """
    import pandas as pd

    column = f"fwd_return_{horizon}"
    scored = frame[frame[column].notna()]
    rows = []
    for analyst, group in scored.groupby("analyst", sort=True):
        buy_hold = float(group[column].mean())
        side = group["action"].map({"BUY": 1.0, "SELL": -1.0, "HOLD": 0.0})
        traded = group[column] * side
        for action in (*ACTIONS, "ALL"):
            part = group if action == "ALL" else group[group["action"] == action]
            if part.empty:
                continue
            mean = float(part[column].mean())
            rows.append({
                "analyst": analyst, "action": action, "n": len(part), "mean_return": mean,
                "median_return": float(part[column].median()), "buy_hold_mean": buy_hold,
                "excess": mean - buy_hold if action != "ALL" else math.nan,
                "traded_mean": float(traded[part.index].mean()),
            })
    return pd.DataFrame(rows, columns=["analyst", "action", "n", "mean_return",
                                       "median_return", "buy_hold_mean", "excess",
                                       "traded_mean"])


def trades_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Stop-or-target-first, R multiple and MAE of BUY/SELL signals per analyst and action."""
    import pandas as pd

    trades = frame[frame["action"].isin(["BUY", "SELL"])]
    rows = []
    for (analyst, action), group in trades.groupby(["analyst", "action"], sort=True):
        done = group[group["trade_outcome"].isin(["target", "stop", "timeout"])]
        n = len(done)

        def share(outcome: str, done: pd.DataFrame = done, n: int = n) -> float:
            return float((done["trade_outcome"] == outcome).sum()) / n if n else math.nan

        rows.append({
            "analyst": analyst, "action": action, "trades": n,
            "target_first": share("target"), "stop_first": share("stop"),
            "timeout": share("timeout"),
            "invalid_levels": int((group["trade_outcome"] == "invalid_levels").sum()),
            "pending": int((group["trade_outcome"] == "pending").sum()),
            "mean_r": float(done["r_multiple"].mean()) if n else math.nan,
            "median_r": float(done["r_multiple"].median()) if n else math.nan,
            "mean_mae_pct": float(done["mae_pct"].mean()) if n else math.nan,
        })
    return pd.DataFrame(rows, columns=["analyst", "action", "trades", "target_first",
                                       "stop_first", "timeout", "invalid_levels", "pending",
                                       "mean_r", "median_r", "mean_mae_pct"])


def ab_table(frame: pd.DataFrame, horizon: int, max_pairs: int = MAX_AB_PAIRS) -> pd.DataFrame:
    """Hit-rate differences between analyst set-ups on the dates both of them called.

    Every pair of set-ups with common (symbol, bar date) rows is compared on exactly those
    rows: images against no-images of one model, the rules analyst against a model.
    """
    import pandas as pd

    scored = _scored(frame, horizon)
    hit = f"hit_{horizon}"
    arms = {analyst: group.drop_duplicates(["symbol", "bar_date"]).set_index(
        ["symbol", "bar_date"])[hit].astype(bool)
        for analyst, group in scored.groupby("analyst", sort=True)}
    names = sorted(arms)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = arms[a].index.intersection(arms[b].index)
            if len(common) == 0:
                continue
            hits_a, hits_b = int(arms[a][common].sum()), int(arms[b][common].sum())
            n = len(common)
            diff, low, high = newcombe_difference(hits_a, n, hits_b, n)
            rows.append({"arm_a": a, "arm_b": b, "common_dates": n,
                         "hit_rate_a": hits_a / n, "hit_rate_b": hits_b / n,
                         "difference": diff, "ci_low": low, "ci_high": high,
                         "significant": bool(low > 0 or high < 0)})
    table = pd.DataFrame(rows, columns=["arm_a", "arm_b", "common_dates", "hit_rate_a",
                                        "hit_rate_b", "difference", "ci_low", "ci_high",
                                        "significant"])
    return table.sort_values("common_dates", ascending=False).head(max_pairs) \
        .reset_index(drop=True)


def stated_horizon_table(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per analyst and daily/weekly agreement: the signals that stated a horizon, its median,
    the hit rate at that horizon, and the hit rate of the same signals at `horizon` bars."""
    import pandas as pd

    stated = frame[frame["horizon_days"].notna()].copy()
    stated["timeframes"] = stated["timeframes_agree"].astype(object).map(AGREEMENT) \
        .fillna("not stated")
    rows = []
    for (analyst, timeframes), group in stated.groupby(["analyst", "timeframes"], sort=True):
        judged = group[group[f"hit_{STATED}"].notna()]
        fixed = group[group[f"hit_{horizon}"].notna()]
        fixed_hits = int(fixed[f"hit_{horizon}"].astype(bool).sum())
        rows.append({
            "analyst": analyst, "timeframes": timeframes, "signals": len(group),
            "median_horizon_days": float(group["horizon_days"].median()),
            **_rate_row(int(judged[f"hit_{STATED}"].astype(bool).sum()), len(judged)),
            "fixed_horizon_hit_rate": fixed_hits / len(fixed) if len(fixed) else math.nan,
        })
    return pd.DataFrame(rows, columns=["analyst", "timeframes", "signals",
                                       "median_horizon_days", "n", "hits", "hit_rate",
                                       "ci_low", "ci_high", "fixed_horizon_hit_rate"])


def summary_table(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """The headline numbers as (metric, value) rows."""
    import pandas as pd

    scored = _scored(frame, horizon)
    hits = int(scored[f"hit_{horizon}"].astype(bool).sum()) if len(scored) else 0
    low, high = wilson_interval(hits, len(scored))
    directional = scored[scored["action"].isin(["BUY", "SELL"])]
    directional_hits = int(directional[f"hit_{horizon}"].astype(bool).sum())
    simulated = simulated_count(frame)
    rows: list[tuple[str, object]] = [
        ("horizon_bars", horizon),
        ("signals", len(frame)),
        ("symbols", int(frame["symbol"].nunique())),
        ("analysts", int(frame["analyst"].nunique()) if "analyst" in frame else 0),
        ("scored", len(scored)),
        ("pending", int(frame[f"hit_{horizon}"].isna().sum() - (frame["outcome_status"]
                                                                == "no_bars").sum())),
        ("no_bars", int((frame["outcome_status"] == "no_bars").sum())),
        ("hit_rate", hits / len(scored) if len(scored) else math.nan),
        ("hit_rate_ci_low", low),
        ("hit_rate_ci_high", high),
        ("directional_hit_rate", directional_hits / len(directional) if len(directional)
         else math.nan),
        ("hold_share", float((frame["action"] == "HOLD").mean()) if len(frame) else math.nan),
        ("simulated_signals", simulated),
        ("in_training_period", int((frame["training_period"] == BEFORE).sum())),
        ("cached_answers", int(frame["cached"].fillna(False).astype(bool).sum())),
        ("first_bar_date", str(frame["bar_date"].min().date()) if len(frame) else ""),
        ("last_bar_date", str(frame["bar_date"].max().date()) if len(frame) else ""),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])


def scorecard_tables(outcomes: pd.DataFrame, horizon: int = 5) -> dict[str, pd.DataFrame]:
    """Every scorecard table from the outcome rows of any set of symbols.

    Keys: summary, by_analyst, by_action, by_confidence, calibration, returns, trades, ab,
    by_training_period, stated_horizon.
    Rates and returns are fractions (0.53 = 53%). For the Gradio app: read the outcomes of
    the symbols (resources.outcomes.read_outcomes) and show these frames as they are.
    """
    if horizon not in HORIZONS:
        raise ValueError(f"horizon={horizon}: choose one of {', '.join(map(str, HORIZONS))}.")
    frame = with_training_period(with_analyst(outcomes))
    return {
        "summary": summary_table(frame, horizon),
        "by_analyst": by_analyst_table(frame, horizon),
        "by_action": by_action_table(frame, horizon),
        "by_confidence": hit_rates(frame, ["analyst", "confidence_level"], horizon,
                                   {"confidence_level": LEVELS}).sort_values(
            "analyst", kind="stable").reset_index(drop=True),
        "calibration": calibration_table(frame, horizon),
        "returns": returns_table(frame, horizon),
        "trades": trades_table(frame),
        "ab": ab_table(frame, horizon),
        "by_training_period": hit_rates(frame, ["analyst", "training_period"], horizon,
                                        {"training_period": PERIODS}).sort_values(
            "analyst", kind="stable").reset_index(drop=True),
        "stated_horizon": stated_horizon_table(frame, horizon),
    }


# --- plots ------------------------------------------------------------------------------------


def _figure_png(fig: object, simulated: bool) -> bytes:
    import matplotlib.pyplot as plt

    if simulated:
        fig.text(0.5, 0.5, "SIMULATED DATA", fontsize=30, color="red",  # type: ignore[attr-defined]
                 alpha=0.15, ha="center", va="center", rotation=20, weight="bold")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buffer.getvalue()


def _pyplot() -> object:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def render_calibration_plot(calibration: pd.DataFrame, horizon: int, *,
                            simulated: bool = False, max_analysts: int = 6) -> bytes:
    """Stated confidence (x) against realised hit rate (y) with Wilson bars; the diagonal is
    perfect calibration. Marker area grows with the bucket's count."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))  # type: ignore[attr-defined]
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1,
            label="perfectly calibrated")
    counts = calibration.groupby("analyst")["n"].sum().sort_values(ascending=False)
    for analyst in counts.index[:max_analysts]:
        part = calibration[calibration["analyst"] == analyst]
        x, y = part["mean_stated"].to_numpy(float), part["hit_rate"].to_numpy(float)
        errors = np.vstack([y - part["ci_low"].to_numpy(float),
                            part["ci_high"].to_numpy(float) - y])
        line = ax.errorbar(x, y, yerr=errors, marker="o", capsize=3, linewidth=1,
                           label=f"{analyst} (n={int(part['n'].sum())})")
        ax.scatter(x, y, s=12 + 4 * part["n"].to_numpy(float) ** 0.8, alpha=0.35,
                   color=line[0].get_color())
    if calibration.empty:
        ax.text(0.5, 0.5, "no scored signals yet", ha="center", va="center")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("stated confidence (mean of bucket)")
    ax.set_ylabel(f"realised hit rate at {horizon} bars")
    ax.set_title("Calibration: stated confidence vs realised hit rate (95% Wilson)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_png(fig, simulated)


def render_hit_rate_plot(by_action: pd.DataFrame, horizon: int, *,
                         simulated: bool = False) -> bytes:
    """Hit rate per analyst and action with Wilson bars; the black tick is the base rate."""
    import numpy as np

    plt = _pyplot()
    rows = by_action.iloc[::-1].reset_index(drop=True)
    height = max(2.6, 0.5 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(8.0, height))  # type: ignore[attr-defined]
    colors = {"BUY": "#26a69a", "SELL": "#ef5350", "HOLD": "#7f7f7f"}
    y = np.arange(len(rows))
    rates = rows["hit_rate"].to_numpy(float)
    errors = np.vstack([rates - rows["ci_low"].to_numpy(float),
                        rows["ci_high"].to_numpy(float) - rates])
    ax.barh(y, rates, xerr=errors, capsize=3,
            color=[colors.get(a, "#1f77b4") for a in rows["action"]], alpha=0.8)
    ax.scatter(rows["base_rate"].to_numpy(float), y, marker="|", s=250, color="black",
               zorder=3)
    # Analyst names carry a prompt hash; two lines keep the bars wide.
    ax.set_yticks(y, [f"{a}\n{act} (n={n})" for a, act, n in
                      zip(rows["analyst"], rows["action"], rows["n"], strict=True)], fontsize=7)
    ax.axvline(0.5, color="#888888", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"hit rate at {horizon} bars (95% Wilson interval)")
    ax.set_title("Hit rate by action (black tick: base rate on the same dates)", fontsize=10)
    if len(rows):
        fig.tight_layout()
    else:
        ax.text(0.5, 0.5, "no scored signals yet", ha="center", va="center")
    return _figure_png(fig, simulated)


def render_scorecard_plots(tables: dict[str, pd.DataFrame], horizon: int, *,
                           simulated: bool = False) -> dict[str, bytes]:
    """Both scorecard plots as PNG bytes, by name (what the asset and the UI show)."""
    return {
        "calibration": render_calibration_plot(tables["calibration"], horizon,
                                               simulated=simulated),
        "hit_rate": render_hit_rate_plot(tables["by_action"], horizon, simulated=simulated),
    }
