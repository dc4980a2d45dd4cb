"""The trading policy as a resource, and the one pre-flight every order decision goes through.

The rules are pure (trading_assets/core/policy.py, core/pretrade.py); this carries the numbers
settings.py read from the environment into the orders asset, the approved_signals sensor and
the Gradio app and CLI, which therefore never disagree, and gathers what the rules look at:
the stored bars, the broker's quote and tick, and the book (positions and working orders).
"""

from dataclasses import dataclass
from datetime import date

import dagster as dg

from resources.app_tables import SignalRow
from resources.broker import Broker
from resources.object_store import ObjectStore
from trading_assets.core.keys import bars_info_key
from trading_assets.core.orders import Market, OrderDecision, OrderType, SymbolSettings
from trading_assets.core.policy import TradingPolicy
from trading_assets.core.pretrade import decide_order
from trading_assets.core.signal import SignalStatus

_DEFAULTS = TradingPolicy()


@dataclass(frozen=True)
class Preflight:
    """The pre-trade verdict on one signal: stale, unreadable, or an order decision."""

    market: Market
    stale: str = ""  # why the approval is too old or the price moved away ('' when not)
    unreadable: str = ""  # why the stored signal no longer reads back ('' when it does)
    decision: OrderDecision | None = None

    @property
    def refusal(self) -> str:
        """Why no order may follow ('' when one may)."""
        if self.stale:
            return f"approval expired: {self.stale}"
        if self.unreadable:
            return self.unreadable
        assert self.decision is not None
        return "" if self.decision.place else self.decision.reason


class PolicyResource(dg.ConfigurableResource):
    """Approval staleness, sizing reserve, reconciliation grace and the pre-trade limits."""

    approval_max_age_days: int = _DEFAULTS.approval_max_age_days
    approval_max_move_pct: float = _DEFAULTS.approval_max_move_pct
    cash_buffer_pct: float = _DEFAULTS.cash_buffer_pct
    reconcile_grace_s: float = _DEFAULTS.reconcile_grace_s
    max_entry_deviation_pct: float = _DEFAULTS.max_entry_deviation_pct
    max_stop_distance_pct: float = _DEFAULTS.max_stop_distance_pct
    max_target_distance_pct: float = _DEFAULTS.max_target_distance_pct
    max_order_notional: float = _DEFAULTS.max_order_notional
    max_order_shares: int = _DEFAULTS.max_order_shares
    max_account_exposure_pct: float = _DEFAULTS.max_account_exposure_pct
    entry_days: int = _DEFAULTS.entry_days

    @property
    def rules(self) -> TradingPolicy:
        return TradingPolicy(**{name: getattr(self, name)
                                for name in TradingPolicy.model_fields})

    def preflight(self, row: SignalRow, *, store: ObjectStore, broker: Broker,
                  settings: SymbolSettings, approving: bool = False,
                  as_of: date | None = None) -> Preflight:
        """Every check an order for this signal must pass, against the stored bars, the
        broker's market and its book (positions AND working orders), before anything is
        claimed at the ledger or placed; a person's Approve runs it too (`approving`)."""
        rules = self.rules
        info = store.read_json(bars_info_key(row.symbol))
        assert isinstance(info, dict)
        last_date = date.fromisoformat(str(info["last_date"]))
        close = float(info["last_close"])
        market = broker.market(row.symbol, close, last_date, settings)
        stale = rules.stale_reason(bar_date=row.bar_date, as_of=max(last_date, as_of or last_date),
                                   reference_close=row.reference_close(), latest_close=close)
        if stale:
            return Preflight(market, stale=stale)
        signal, problem = row.read_signal()
        if signal is None:
            return Preflight(market, unreadable=problem or f"signal {row.id} has no content "
                                                           f"({row.status})")
        decision = decide_order(
            signal_id=row.id, signal=signal, status=SignalStatus(row.status), settings=settings,
            market=market, book=broker.book(), allow_short=broker.allow_short,
            order_type=OrderType(broker.order_type), costs=broker.costs(), policy=rules,
            approving=approving)
        return Preflight(market, decision=decision)
