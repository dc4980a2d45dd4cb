"""The signal and order lifecycle in one table: every status change a person or the system makes.

The README's state diagram draws this table. `AppDatabase` refuses any change not listed here,
so a status nobody can leave (without a database edit) cannot be written by the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading_assets.core.signal import SignalStatus as S


@dataclass(frozen=True)
class Transition:
    """One allowed change of a signal's status, who makes it and on what event."""

    source: S
    target: S
    actor: str  # "person" (Gradio, CLI) or "system" (an asset or a sensor)
    event: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.PENDING_REVIEW, S.APPROVED, "person", "approve"),
    Transition(S.PENDING_REVIEW, S.REJECTED, "person", "reject"),
    Transition(S.APPROVED, S.REJECTED, "person", "reject (no order that could still exist)"),
    Transition(S.AUTO_APPROVED, S.REJECTED, "person", "reject (no order that could still exist)"),
    Transition(S.NOT_PLACED, S.APPROVED, "person", "re-approve (a new order attempt)"),
    Transition(S.NOT_PLACED, S.REJECTED, "person", "reject"),
    Transition(S.ORDER_FAILED, S.APPROVED, "person", "re-approve (a new order attempt)"),
    Transition(S.ORDER_FAILED, S.REJECTED, "person", "reject"),
    Transition(S.APPROVED, S.EXECUTED, "system", "broker accepted or filled the order"),
    Transition(S.AUTO_APPROVED, S.EXECUTED, "system", "broker accepted or filled the order"),
    Transition(S.APPROVED, S.ORDER_FAILED, "system", "broker rejected or cancelled the order"),
    Transition(S.AUTO_APPROVED, S.ORDER_FAILED, "system",
               "broker rejected or cancelled the order"),
    Transition(S.APPROVED, S.NOT_PLACED, "system",
               "a risk limit refused it, reconciliation found no order, or its runs gave up"),
    Transition(S.AUTO_APPROVED, S.NOT_PLACED, "system",
               "a risk limit refused it, reconciliation found no order, or its runs gave up"),
    Transition(S.APPROVED, S.EXPIRED, "system", "approval stale (too old or price moved)"),
    Transition(S.AUTO_APPROVED, S.EXPIRED, "system", "approval stale (too old or price moved)"),
)
# Created by llm_signal: pending_review, auto_approved (policy.auto_approves) or error; an `error`
# row is replaced by the next analysis of the same bar. rejected, expired and executed are final.


def retryable_statuses(transitions: tuple[Transition, ...]) -> frozenset[S]:
    """Statuses an approval ends in without an order that a person may approve again: the
    table's cycles approved -> status -> approved (a new order attempt)."""
    reached = {t.target for t in transitions if t.source == S.APPROVED}
    return frozenset(t.source for t in transitions
                     if t.target == S.APPROVED and t.actor == "person" and t.source in reached)


# Ended without an order, with the reason on the signal: a person may re-approve or reject it.
RETRYABLE_STATUSES = retryable_statuses(TRANSITIONS)


class TransitionError(ValueError):
    """A status change the lifecycle does not allow."""


def allowed_targets(source: str, actor: str) -> frozenset[S]:
    """The statuses `actor` may move a signal in `source` to."""
    return frozenset(t.target for t in TRANSITIONS if t.source == source and t.actor == actor)


def check_transition(source: str, target: S, actor: str) -> None:
    """Raise TransitionError (with what is allowed instead) unless the table lists the change."""
    if target not in allowed_targets(source, actor):
        allowed = sorted(s.value for s in allowed_targets(source, actor))
        raise TransitionError(
            f"a {actor} cannot move a signal from {source} to {target.value}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else f" ({source} is final)"))


# --- the orders ledger --------------------------------------------------------------------
# Ledger statuses of our own; anything else is the broker's (IBKR's names, used by the paper
# broker too).
SUBMITTING = "submitting"  # claimed, broker call under way (or the process died during it)
UNKNOWN = "unknown"  # reconciliation found no order with the reference once; asked again later
NOT_PLACED = "not_placed"  # reconciliation found nothing twice, after the grace period
UNRESOLVED_LEDGER = frozenset({SUBMITTING, UNKNOWN})
# Broker statuses that end an order without a (further) fill.
FAILED_BROKER_STATUSES = frozenset({"Cancelled", "ApiCancelled", "Inactive", "Rejected"})


def could_still_exist(ledger_status: str) -> bool:
    """Whether the broker may hold (or later show) this order: a second attempt must wait."""
    return ledger_status != NOT_PLACED and ledger_status not in FAILED_BROKER_STATUSES


def outcome_of(broker_status: str) -> S:
    """The signal status a broker's order status settles: order_failed or executed."""
    return S.ORDER_FAILED if broker_status in FAILED_BROKER_STATUSES else S.EXECUTED


def order_ref(signal_id: str, attempt: int) -> str:
    """The broker's orderRef: the signal id, then `<id>-2`, `<id>-3` for re-approved attempts."""
    return signal_id if attempt == 1 else f"{signal_id}-{attempt}"
