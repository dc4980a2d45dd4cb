"""The optional run-failure webhook: a small, secret-free JSON message."""

import json
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

import trading_assets.core.clock as clock
from trading_assets.automation.planning import LIST_LIMIT


def post_alert(url: str, payload: Mapping[str, Any], timeout_s: float, log: Any = None) -> bool:
    """POST a small JSON message; any failure is logged (without the URL) and swallowed."""
    if not url:
        return False
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "trading-signals-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read(1024)
        return True
    except Exception as exc:  # an alert must never break the sensor that sends it
        # The URL often embeds a token, and some exception texts repeat it: name the type only.
        if log is not None:
            code = getattr(exc, "code", "")
            log.warning(f"Alert webhook POST failed: {type(exc).__name__} {code}".strip())
        return False


def failure_alert(run: dg.DagsterRun, symbols: Sequence[str],
                  failed_steps: Mapping[str, str]) -> dict[str, Any]:
    """What the webhook gets: run, job, symbols and failing steps with their error types only.

    Error messages are left out on purpose: they can quote paths, URLs or keys. The Dagster run
    and the symbols table in the app hold the details.
    """
    return {
        "source": "trading-signals",
        "event": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "symbol_count": len(symbols),
        "symbols": list(symbols[:LIST_LIMIT]),
        "failed_steps": dict(failed_steps),
        "at": clock.utc_now().isoformat(timespec="seconds"),
    }
