"""The bench's table: each figure beside its target and verdict, as printed and in the JSON."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from trading_assets.bench.common import (
    REFERENCE,
    TARGET_500_WALL_S,
    TARGET_CHARTS_S,
    TARGET_DEMO_S,
    TARGET_LLM_100_S,
    TARGET_MAX_RUNS,
    TARGET_PEAK_RSS_MB,
    TARGET_SYMBOL_S,
)
from trading_assets.bench.live import TARGET_DEFINITIONS_IMPORT_S, live_rows

# --- the table ---------------------------------------------------------------------------------


# How a figure is judged against its target, by the sign printed beside the target.
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">=": operator.ge, "==": operator.eq,
}


def _row(section: str, name: str, value: float | int | None, unit: str,
         target: float | None = None, op: str = "<") -> dict[str, Any]:
    """One line of the table; `passed` is `value op target`, None without a target or value."""
    passed = None if target is None or value is None else _COMPARE[op](value, target)
    return {"section": section, "name": name, "value": value, "unit": unit, "target": target,
            "target_op": None if target is None else op, "passed": passed}


def table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    stages = report["stages"]
    if "median_s" in stages:
        m = stages["median_s"]
        section = f"per symbol, in process (median of {stages['runs']})"
        rows += [
            _row(section, "ohlcv (simulate 400 bars, sanity, store)", m["ohlcv"], "s"),
            _row(section, "indicators (daily + weekly, read + store)", m["indicators"], "s"),
            _row(section, "charts: read indicators", m["chart_inputs"], "s"),
            _row(section, "charts: render both", m["charts"], "s", TARGET_CHARTS_S),
            _row(section, "charts: store PNGs + UI previews", m["chart_store_previews"], "s"),
            _row(section, "rules signal (request, analyst, signal row)", m["rules_signal"], "s"),
            _row(section, "orders (risk check, paper order, ledger)", m["orders"], "s"),
            _row(section, "portfolio (positions, account, snapshot)", m["portfolio"], "s"),
            _row(section, "total per symbol (no LLM latency)", m["total"], "s", TARGET_SYMBOL_S),
            _row(section, "load trading_assets.definitions (fresh process)",
                 stages["definitions_import_s"], "s", TARGET_DEFINITIONS_IMPORT_S),
        ]
    rows += renderer_rows(stages.get("charts_vs_mplfinance"))
    for result in report["e2e"]:
        n, mlflow = result["symbols"], result.get("mlflow", "on")
        section = (f"end to end, {n} symbols (Dagster, in-process, MLflow {mlflow})"
                   f"{_median_of(result)}")
        if "error" in result:
            rows.append(_row(section, f"FAILED: {result['error']}", None, ""))
            continue
        # The wall-time target is for the default configuration, MLflow on.
        at_scale = n >= 500 and mlflow == "on"
        rows += [
            _row(section, "wall time", result["wall_s"], "s",
                 TARGET_500_WALL_S * n / 500 if at_scale else None),
            _row(section, "symbols per minute", result["symbols_per_minute"], "/min",
                 500 / TARGET_500_WALL_S * 60 if at_scale else None, op=">="),
            _row(section, "symbols completed", result["symbols_completed"], "", n, op=">="),
            _row(section, "Dagster runs", result["dagster_runs"], "runs", TARGET_MAX_RUNS,
                 op="<="),
            _row(section, "peak memory, Dagster process (ru_maxrss)", result["peak_rss_mb"], "MB",
                 TARGET_PEAK_RSS_MB),
            _row(section, "peak memory incl. chart workers (/proc)", result["peak_tree_rss_mb"],
                 "MB", TARGET_PEAK_RSS_MB),
            _row(section, "CPU time, Dagster process + chart workers", result.get("cpu_s"), "s"),
            _row(section, "event log (DAGSTER_HOME) per symbol",
                 round(result["event_log_bytes_per_symbol"] / 1024, 1), "KB"),
        ]
    llm = report["llm"]
    if "wall_s" in llm:
        section = (f"LLM: {llm['calls']} calls of {llm['delay_s']:g} s, concurrency "
                   f"{llm['concurrency']} (loopback server){_median_of(llm)}")
        standard = llm["calls"] == 100 and llm["delay_s"] == 1.0
        rows += [
            _row(section, "wall time", llm["wall_s"], "s", TARGET_LLM_100_S if standard else None),
            _row(section, "sequential (calls x delay)", llm["sequential_s"], "s"),
            _row(section, "calls answered", llm["ok"], "", llm["calls"], op=">="),
        ]
    if "skipped" not in report.get("live", {"skipped": ""}):
        rows += live_rows(report["live"], _row)
    demo = report["demo"]
    if "wall_s" in demo:
        section = f"demo{_median_of(demo)}"
        rows.append(_row(section, "`trading-signals demo` (2 symbols, fresh process)",
                         demo["wall_s"], "s", TARGET_DEMO_S))
        rows.append(_row(section, "exit code", demo["exit_code"], "", 0, op="=="))
    return rows


def renderer_rows(charts: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The daily chart drawn by the project's renderer and by mplfinance, and their ratio."""
    if not charts or "project_s" not in charts:
        return []
    section = f"one daily chart ({charts['bars']} bars), median of {charts['runs']}"
    return [_row(section, "project renderer (core/charts.py)", charts["project_s"], "s"),
            _row(section, "mplfinance, same panels (fresh figure)", charts["mplfinance_s"], "s"),
            _row(section, "mplfinance / project", charts["ratio"], "x")]


def _median_of(result: dict[str, Any]) -> str:
    samples = result.get("wall_s_samples") or []
    return f", median of {len(samples)} runs" if len(samples) > 1 else ""


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:g} {unit}".strip()


def print_bench_report(report: dict[str, Any]) -> None:
    """The bench report by section, each measure against its target (console.print_table is
    the plain rows-and-columns printer)."""
    machine = report["machine"]
    print(f"\ntrading-signals bench: {machine['cpus']} CPU(s), Python {machine['python']}, "
          f"Dagster {machine['dagster']}, {machine['platform']}")
    if machine.get("load_avg_start") is not None:
        print(f"load average (1, 5, 15 min): {machine['load_avg_start']} at the start, "
              f"{machine.get('load_avg_end')} at the end")
    rows = report["table"]
    width = max([len(r["name"]) for r in rows] + [20]) + 2
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            print(f"\n{section}")
            print(f"  {'measure'.ljust(width)}{'value':>12}  {'target':>12}  result")
        target = "-" if row["target"] is None else \
            f"{row['target_op']} {_fmt(round(row['target'], 3), row['unit'])}"
        result = "" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
        print(f"  {row['name'].ljust(width)}{_fmt(row['value'], row['unit']):>12}  "
              f"{target:>12}  {result}")
    charts = report["stages"].get("charts_vs_mplfinance") if isinstance(report["stages"], dict) \
        else None
    if charts and "skipped" in charts:
        print(f"\nmplfinance comparison: skipped ({charts['skipped']})")
    for name, section_report in (("llm", report["llm"]), ("demo", report["demo"])):
        if "skipped" in section_report:
            print(f"\n{name}: skipped ({section_report['skipped']})")
    print(f"\nReference: {REFERENCE}.")

