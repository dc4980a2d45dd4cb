"""What is running: the Dagster daemon and webserver, the instance, the app database, the object
store, the broker, market data and the LLM endpoint, one `Check` each.

`trading-signals status` prints them all; the Gradio app shows the daemon's and the webserver's
on every page (approvals become orders only through the daemon's sensors). Each probe is short
(a heartbeat read, one HTTP request or one query) and says what does not happen while a part is
down and how to start it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A daemon whose heartbeat is older than HEARTBEAT_MAX_AGE_S is taken as not running, by the
# runs layer (whether its queue is drained) and here alike.
from trading_assets.runs import HEARTBEAT_MAX_AGE_S

PROBE_TIMEOUT_S = 2.0
# The daemons this project relies on: sensors (new symbols, approvals -> orders, symbol sync,
# run failures, freshness), the daily_refresh schedule, and the run queue.
DAEMONS = {"SENSOR": "sensors", "SCHEDULER": "schedule", "QUEUED_RUN_COORDINATOR": "run queue"}
DAEMON_DOWN_EFFECTS = ("approved signals do not become orders, the sensors (new symbols, "
                       "approvals, symbol sync, run failures) do not run and the daily_refresh "
                       "schedule does not fire")
START_DAEMON = "start it with: make up (Dagster and the Gradio app together) or make dev"


@dataclass(frozen=True)
class Check:
    """One part of the system: "up", "down" or "off" (not configured), and what that means."""

    part: str
    state: str
    detail: str
    needed: bool = True  # down and needed: `trading-signals status` exits 1

    @property
    def up(self) -> bool:
        return self.state == "up"


@dataclass(frozen=True)
class Health:
    """Every check, in the order `trading-signals status` prints them."""

    checks: list[Check] = field(default_factory=list)

    @property
    def down(self) -> list[Check]:
        """The parts the configuration needs that are down."""
        return [c for c in self.checks if c.state == "down" and c.needed]


def daemon_check(instance: Any, needed: bool = True, now: float | None = None,
                 since: float = 0.0) -> Check:
    """Whether the Dagster daemon heartbeats on this instance (sensors, schedule, run queue).

    `since`: heartbeats written before it do not count (a daemon just restarted on a home
    where a killed one beat a moment ago must beat anew)."""
    now = time.time() if now is None else now
    beats = instance.get_daemon_heartbeats()
    ages = {name: now - beats[name].timestamp for name in DAEMONS
            if name in beats and beats[name].timestamp >= since}
    stale = [DAEMONS[name] for name in DAEMONS if ages.get(name, HEARTBEAT_MAX_AGE_S)
             >= HEARTBEAT_MAX_AGE_S]
    if not stale:
        return Check("daemon", "up", f"running (last heartbeat {max(ages.values()):.0f} s ago)",
                     needed)
    if not ages:
        why = "not running (no heartbeat on this instance)"
    elif len(stale) == len(DAEMONS):
        why = f"not running (last heartbeat {min(ages.values()):.0f} s ago)"
    else:
        why = f"not running: no recent heartbeat from its {', '.join(stale)}"
    return Check("daemon", "down", f"{why}: {DAEMON_DOWN_EFFECTS}; {START_DAEMON}", needed)


def run_placement(mode: str, forced: bool = False, here: str = "this process") -> str:
    """Where runs launched now execute ("daemon" or "in-process", runs.resolve_mode), as the
    CLI's header and the app's Run now say it (`here`: the launching process)."""
    from trading_assets.executors import executor_kind

    if mode == "daemon":
        return "submitted to the Dagster daemon's queue"
    if executor_kind() == "celery":
        return f"launched from {here}, steps on the Celery workers (TRADING_EXECUTOR=celery)"
    return f"in {here}" + ("" if forced else " (no Dagster daemon running)")


def webserver_answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when a Dagster webserver answers at `url` (its /server_info)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/server_info", timeout=timeout_s) as reply:
            return reply.status == 200 and b"dagster_webserver_version" in reply.read(4096)
    except (OSError, ValueError):
        return False


def webserver_check(url: str) -> Check:
    """The Dagster UI: a view on the instance, not needed for runs, sensors or orders."""
    if webserver_answers(url):
        return Check("webserver", "up", f"Dagster UI at {url}", needed=False)
    return Check("webserver", "down", f"nothing answers at {url} (DAGSTER_WEBSERVER_URL): the "
                 "Dagster UI is closed; make up or make dev starts it", needed=False)


def http_check(part: str, url: str, what: str, needed: bool) -> Check:
    """Any HTTP answer from `url` counts as up (an API may refuse an anonymous request)."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        pass  # it answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Check(part, "down", f"{what}: nothing answers ({reason})", needed)
    return Check(part, "up", what, needed)


def _probe(part: str, what: str, probe: Callable[[], object], needed: bool = True) -> Check:
    """Run `probe`; its exception's first line is the reason the part is down."""
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 (each client raises its own errors)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return Check(part, "down", f"{what}: {reason[0] if reason else type(exc).__name__}",
                     needed)
    return Check(part, "up", what, needed)


def instance_check(instance: Any) -> Check:
    """The Dagster instance's storage answers a query."""
    home = getattr(instance, "root_directory", "") or "DAGSTER_HOME"
    storage = type(instance.run_storage).__name__
    return _probe("instance", f"{home} ({storage})", instance.get_runs_count)


def _ibkr_probe(part: str, what: str, ibkr: Any, probe: Callable[[], object]) -> Check:
    """An IBKR part: probed, and when up, the API server version and connection time its
    gateway announced (a gateway that shares no version with ib_async is down, saying so)."""
    check = _probe(part, what, probe)
    if not check.up:
        return check
    return Check(part, "up", f"{what}: {ibkr.handshake().describe()}", check.needed)


def market_data_check(market: Any) -> Check:
    """IBKR market data needs the gateway; other sources have nothing to reach ahead of a run."""
    if market.source == "ibkr":
        return _ibkr_probe("market data", market.describe(), market.ibkr,
                           market.ibkr.account_snapshot)
    return Check("market data", "up", market.describe())


def broker_check(broker: Any) -> Check:
    """The broker's account answers (IBKR: through the gateway, with its API version)."""
    if broker.kind == "ibkr":
        return _ibkr_probe("broker", broker.label, broker.ibkr, broker.account)
    return _probe("broker", broker.label, broker.account)


def llm_check(analyst: Any) -> Check:
    """The model's endpoint answers HTTP; the rules analyst needs none."""
    if analyst.provider == "rules":
        return Check("LLM endpoint", "off", "rules analyst (no model; set LLM_BASE_URL/"
                     "LLM_API_KEY for one)", needed=False)
    base = (analyst.url or "https://api.openai.com/v1").rstrip("/")
    return http_check("LLM endpoint", f"{base}/models", analyst.endpoint, needed=True)


def system_health(resources: dict[str, Any], instance: Any, webserver_url: str,
                  automation_running: bool = True) -> Health:
    """Every part, probed once (the daemon is needed while sensors and the schedule are on)."""
    from sqlalchemy.engine import make_url

    from trading_assets.core.config import plain

    app_db, store, broker = resources["app_db"], resources["store"], resources["broker"]
    try:
        database = make_url(plain(app_db.url)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (an unparseable URL: its probe says so)
        database = "APP_DATABASE_URL"
    return Health([
        daemon_check(instance, needed=automation_running),
        webserver_check(webserver_url),
        instance_check(instance),
        _probe("app database", database, lambda: app_db.engine.connect().close()),
        _probe("object store", store.label, lambda: store.exists("health/probe")),
        broker_check(broker),
        market_data_check(resources["market_data"]),
        llm_check(resources["analyst"]),
    ])
