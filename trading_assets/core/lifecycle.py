"""The signal and order lifecycle in one table: every status change a person or the system makes.

The state diagram in docs/lifecycle.md draws this table. `AppDatabase` refuses any change not
listed here, so a status nobody can leave (without a database edit) cannot be written by the code.
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
    Transition(S.PENDING_REVIEW, S.APPROVED, "person", "approve (the pre-trade checks pass)"),
    Transition(S.PENDING_REVIEW, S.REJECTED, "person", "reject"),
    Transition(S.APPROVED, S.REJECTED, "person", "reject (no order that could still exist)"),
    Transition(S.AUTO_APPROVED, S.REJECTED, "person", "reject (no order that could still exist)"),
    Transition(S.NOT_PLACED, S.APPROVED, "person", "re-approve (a new order attempt)"),
    Transition(S.NOT_PLACED, S.REJECTED, "person", "reject"),
    Transition(S.ORDER_FAILED, S.APPROVED, "person", "re-approve (a new order attempt)"),
    Transition(S.ORDER_FAILED, S.REJECTED, "person", "reject"),
    Transition(S.APPROVED, S.EXECUTED, "system", "the entry order filled"),
    Transition(S.AUTO_APPROVED, S.EXECUTED, "system", "the entry order filled"),
    Transition(S.APPROVED, S.WORKING, "system",
               "the broker accepted the entry order, not filled yet"),
    Transition(S.AUTO_APPROVED, S.WORKING, "system",
               "the broker accepted the entry order, not filled yet"),
    Transition(S.WORKING, S.EXECUTED, "system", "the entry order filled (or partly, then ended)"),
    Transition(S.WORKING, S.ORDER_FAILED, "system",
               "the entry order expired, or was cancelled (by a person too) or rejected"),
    Transition(S.APPROVED, S.ORDER_FAILED, "system", "broker rejected or cancelled the order"),
    Transition(S.AUTO_APPROVED, S.ORDER_FAILED, "system",
               "broker rejected or cancelled the order"),
    Transition(S.APPROVED, S.NOT_PLACED, "system",
               "a pre-trade check refused it, reconciliation found no order, or its runs gave up"),
    Transition(S.AUTO_APPROVED, S.NOT_PLACED, "system",
               "a pre-trade check refused it, reconciliation found no order, or its runs gave up"),
    Transition(S.APPROVED, S.EXPIRED, "system",
               "approval stale (too old or price moved), or its symbol was removed"),
    Transition(S.AUTO_APPROVED, S.EXPIRED, "system",
               "approval stale (too old or price moved), or its symbol was removed"),
    Transition(S.PENDING_REVIEW, S.EXPIRED, "system",
               "stale when a person approved it, or its symbol was removed"),
    Transition(S.NOT_PLACED, S.EXPIRED, "system", "its symbol was removed"),
    Transition(S.ORDER_FAILED, S.EXPIRED, "system", "its symbol was removed"),
    # A stored signal that no longer validates (written by older code) is shown as an error
    # with the reason, instead of failing every later run of its symbol.
    Transition(S.PENDING_REVIEW, S.ERROR, "system", "the stored signal no longer reads back"),
    Transition(S.APPROVED, S.ERROR, "system", "the stored signal no longer reads back"),
    Transition(S.AUTO_APPROVED, S.ERROR, "system", "the stored signal no longer reads back"),
)
# Created by llm_signal (core/policy.entry_status): pending_review, auto_approved, no_action
# (nothing to decide: HOLD, LOW confidence, SELL with nothing to sell) or error; an `error` row
# is replaced by the next analysis of the same bar. A `working` signal's way out is its order:
# it fills (executed), expires at its time in force, or a person cancels it (order_failed).
# no_action, rejected, expired and executed are final.


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


# Broker statuses of an order that is still working (IBKR's names, the paper broker's too).
WORKING_BROKER_STATUSES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted",
                                     "Submitted"})


def outcome_of(broker_status: str, filled: float = 0.0, quantity: float = 0.0
               ) -> tuple[S, str]:
    """The signal status a broker's report of the entry order settles, and the note it carries.

    executed only once the entry filled: fully, or partly when the rest can no longer fill;
    working while it rests at the broker; order_failed when it ended with nothing filled.
    """
    part = f"partly filled: {filled:g} of {quantity:g} shares" if 0 < filled < quantity else ""
    if broker_status in FAILED_BROKER_STATUSES:
        if filled > 0:
            return S.EXECUTED, f"{part}; the rest ended {broker_status}"
        return S.ORDER_FAILED, ""
    if broker_status == "Filled" or (quantity and filled >= quantity):
        return S.EXECUTED, ""
    return S.WORKING, part


def order_ref(signal_id: str, attempt: int) -> str:
    """The broker's orderRef: the signal id, then `<id>-2`, `<id>-3` for re-approved attempts."""
    return signal_id if attempt == 1 else f"{signal_id}-{attempt}"


# Statuses a signal is created in, and on what (llm_signal; see the comment under TRANSITIONS).
ENTRY_STATUSES: tuple[tuple[S, str], ...] = (
    (S.PENDING_REVIEW, "llm_signal: actionable, waits for a person"),
    (S.AUTO_APPROVED, "llm_signal: the symbol's policy approves it"),
    (S.NO_ACTION, "llm_signal: HOLD, LOW confidence, or nothing to sell"),
    (S.ERROR, "llm_signal: the analyst failed (never a HOLD)"),
)
FINAL_STATUSES = (S.NO_ACTION, S.REJECTED, S.EXPIRED, S.EXECUTED)


def mermaid_diagram() -> str:
    """The table as docs/lifecycle.md's Mermaid state diagram (a test keeps the two equal)."""
    lines = ["stateDiagram-v2"]
    lines += [f"    [*] --> {status.value}: {why}" for status, why in ENTRY_STATUSES]
    lines += [f"    {t.source.value} --> {t.target.value}: {t.actor}: {t.event}"
              for t in TRANSITIONS]
    lines += [f"    {status.value} --> [*]" for status in FINAL_STATUSES]
    return "\n".join(lines)
