"""A person's decisions on a signal, the same from the Gradio app and the CLI.

Approve runs the orders step's own pre-trade checks first (resources/policy.py): a signal that
could not be placed now (stale, levels out of band, no cash or exposure room, nothing to sell)
is refused at once with the reason, instead of being accepted and turning `not_placed` a
minute later. Cancel takes a working order back from the broker: the way out of `working`.
"""

from __future__ import annotations

from dataclasses import replace

import trading_assets.core.clock as clock
from resources.app_db import AppDatabase, SignalRow
from resources.broker import Broker
from resources.ledger import check_review
from resources.object_store import ObjectStore
from resources.policy import PolicyResource
from trading_assets.core.calendar import exchange_date
from trading_assets.core.lifecycle import TransitionError, check_transition
from trading_assets.core.signal import SignalStatus

STALE_AT_APPROVAL = "review:stale"


class ReviewRefused(ValueError):
    """A decision the checks refused; the message says why and what a person can do."""


def _signal(app_db: AppDatabase, signal_id: str) -> SignalRow:
    row = app_db.get_signal(signal_id) if signal_id else None
    if row is None:
        raise KeyError(f"No signal with id {signal_id!r}.")  # bad input: exit 2, not a refusal
    return row


def approve_signal(*, app_db: AppDatabase, policy: PolicyResource, store: ObjectStore,
                   broker: Broker, signal_id: str, reviewer: str, note: str = "") -> SignalRow:
    """Approve (or re-approve) a signal once the pre-trade checks pass against today's market
    and book; a stale one is expired instead, anything else refused with the reason."""
    check_review(SignalStatus.APPROVED, note, reviewer)
    row = _signal(app_db, signal_id)
    try:
        check_transition(row.status, SignalStatus.APPROVED, "person")
    except TransitionError as exc:
        raise ReviewRefused(f"Signal {row.id} is {row.status}: {exc}.") from exc
    try:
        check = policy.preflight(row, store=store, broker=broker,
                                 settings=app_db.settings_for(row.symbol), approving=True,
                                 as_of=exchange_date(clock.utc_now()))
    except FileNotFoundError as exc:
        raise ReviewRefused(f"Not approved: no stored bars for {row.symbol} ({exc}); run its "
                            "pipeline first (Run now, or trading-signals materialize).") from exc
    if check.stale:
        app_db.review_signal(row.id, SignalStatus.EXPIRED, reviewer=STALE_AT_APPROVAL,
                             note=check.stale, actor="system")
        raise ReviewRefused(f"Not approved: {check.refusal}. The signal is now expired; the "
                            "next analysis of the symbol makes a fresh one.")
    if check.refusal:
        can_change = check.decision is not None and check.decision.retry
        raise ReviewRefused(
            f"Not approved: {check.refusal}. Nothing changed: "
            + ("approve it again once that no longer holds, or reject it." if can_change
               else "these are the signal's own numbers, so reject it."))
    return app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer=reviewer, note=note)


def cancel_working_order(*, app_db: AppDatabase, broker: Broker, signal_id: str,
                         reviewer: str, note: str = "") -> SignalRow:
    """Cancel the resting entry of a `working` signal (and its bracket) at the broker; the
    signal then ends order_failed with who cancelled it, or executed if it filled first."""
    check_review(SignalStatus.REJECTED, note, reviewer)  # the same bounds as any decision
    row = _signal(app_db, signal_id)
    if row.status != SignalStatus.WORKING.value:
        raise ReviewRefused(f"Signal {row.id} is {row.status}: only a working signal has an "
                            "order to cancel.")
    order = app_db.order_for_signal(row.id)
    if order is None:
        raise ReviewRefused(f"Signal {row.id} has no order in the ledger.")
    why = f"cancelled by {reviewer}" + (f": {note}" if note else "")
    reported = broker.cancel_order(order.order_ref, reason=why)
    if reported is None:
        raise ReviewRefused(f"{broker.label} has no order {order.order_ref}; the next orders "
                            "run reconciles it.")
    if reported.filled == 0:
        reported = replace(reported, reason=why)
    app_db.update_order(row.id, reported)
    app_db.record_decision(row.symbol, row.id, False, why)
    return _signal(app_db, row.id)
