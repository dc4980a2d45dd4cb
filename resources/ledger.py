"""The orders ledger, reviews and analysis claims: every status change goes through here.

The changes follow the one transition table (trading_assets/core/lifecycle.py); each is made
under the signal's row lock, so a review, an order claim and a broker update on the same
signal run one after the other.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from resources.app_tables import (
    AnalysisClaimRow,
    Database,
    EquityPointRow,
    OrderDecisionRow,
    OrderRow,
    ReviewRow,
    SignalRow,
    TradeRow,
    lock_signal,
    utcnow,
)
from trading_assets.core.lifecycle import (
    FAILED_BROKER_STATUSES,
    NOT_PLACED,
    UNKNOWN,
    UNRESOLVED_LEDGER,
    WORKING_BROKER_STATUSES,
    TransitionError,
    allowed_targets,
    check_transition,
    could_still_exist,
    order_ref,
    outcome_of,
)
from trading_assets.core.orders import AccountSnapshot, BrokerOrder, Position
from trading_assets.core.signal import EXECUTABLE_STATUSES, SignalStatus
from trading_assets.core.symbols import validate_symbol
from trading_assets.core.trades import TradeUpdate, trade_from_order, trade_result

# Signals an orders run may act on: live and approved (by a reviewer or the auto-approve rule).
# Sorted so the statement, and so SQLAlchemy's compiled-statement cache entry, is stable.
_EXECUTABLE = (SignalRow.mode == "live",
               SignalRow.status.in_(sorted(s.value for s in EXECUTABLE_STATUSES)))
# A ledger row whose order the broker may hold (core/lifecycle.could_still_exist).
_LIVE_ORDER = OrderRow.status.not_in(sorted({NOT_PLACED, *FAILED_BROKER_STATUSES}))
# ... and that have no such order: a new attempt may be claimed.
_AWAITING_ORDER = (*_EXECUTABLE,
                   SignalRow.id.not_in(select(OrderRow.signal_id).where(_LIVE_ORDER)))
# A review note is free text, but a page or a terminal must be able to show it.
NOTE_MAX_CHARS = 2000
REVIEWER_MAX_CHARS = 64  # signal_reviews.reviewer is String(64)


def _latest_order(session: Session, signal_id: str) -> OrderRow | None:
    return session.scalars(select(OrderRow).where(OrderRow.signal_id == signal_id)
                           .order_by(OrderRow.attempt.desc())).first()


def check_review(decision: SignalStatus, note: str, reviewer: str) -> None:
    """A decision's own inputs, before anything is looked up: a review, an expiry, a note and
    a reviewer that fit their columns."""
    allowed = {SignalStatus.APPROVED, SignalStatus.REJECTED, SignalStatus.EXPIRED}
    if decision not in allowed:
        raise ValueError(f"A review decides approved, rejected or expired, not {decision}.")
    if len(note) > NOTE_MAX_CHARS:
        raise ValueError(f"The note is {len(note)} characters long; keep it under "
                         f"{NOTE_MAX_CHARS}.")
    if len(reviewer) > REVIEWER_MAX_CHARS:
        raise ValueError(f"The reviewer name is {len(reviewer)} characters long; keep it to "
                         f"{REVIEWER_MAX_CHARS} at most.")


class OrdersLedger(Database):
    """Reviews, the orders ledger (one live attempt per signal) and analysis claims."""

    # --- reviews and system decisions --------------------------------------------------

    def review_signal(self, signal_id: str, decision: SignalStatus, *, reviewer: str,
                      note: str = "", actor: str = "person") -> SignalRow:
        """Approve, re-approve, reject or expire a signal, keeping who, when and why.

        `actor` is "person" (Gradio, CLI) or "system" (a stale approval). The change must be
        in the lifecycle table, and no decision may drop a signal whose order could still exist
        at the broker: the order run has claimed it (and may have placed it) first.
        """
        check_review(decision, note, reviewer)
        with self.session() as session:
            # Locked before it is read, so claim_order cannot slip in between check and write.
            row = session.get(SignalRow, signal_id) if lock_signal(session, signal_id) else None
            if row is None:
                raise KeyError(f"No signal with id {signal_id!r}.")
            if row.mode != "live":
                raise ValueError(f"Signal {signal_id} is a {row.mode} signal and cannot be "
                                 "reviewed for execution.")
            try:
                check_transition(row.status, decision, actor)
            except TransitionError as exc:
                raise ValueError(f"Signal {signal_id} is already {row.status}: {exc}.") from exc
            order = _latest_order(session, signal_id)
            if order is not None and could_still_exist(order.status):
                raise ValueError(f"Signal {signal_id} cannot be {decision.value}: an order is "
                                 f"already in the ledger for this signal ({order.action} "
                                 f"{order.quantity:g}, {order.status}, orderRef "
                                 f"{order.order_ref}); cancel it at the broker if it must not "
                                 "trade. An unresolved one is reconciled by the next orders run "
                                 f"(trading-signals materialize --symbols {order.symbol}).")
            keep_reason = actor == "system" or decision is not SignalStatus.APPROVED
            row.status, row.updated_at = decision.value, utcnow()
            row.status_reason = note if keep_reason else ""
            row.retryable = False
            session.add(ReviewRow(signal_id=signal_id, decision=decision.value,
                                  reviewer=reviewer, note=note))
        return row

    def settle_signal(self, signal_id: str, status: SignalStatus, reason: str,
                      retryable: bool = False) -> bool:
        """Move a signal the system may move (approved to executed, working, not_placed or
        order_failed; working to executed or order_failed) with the reason; False when the
        table has no such change from its status now (a person decided first)."""
        with self.session() as session:
            return self._settle(session, signal_id, status, reason, retryable)

    def fail_signal(self, signal_id: str, reason: str) -> bool:
        """Show a stored signal that no longer reads back as an `error` with the reason (the
        next analysis of its bar replaces it), so it blocks no other signal of its symbol."""
        with self.session() as session:
            if not self._settle(session, signal_id, SignalStatus.ERROR, reason):
                return False
            session.execute(update(SignalRow).where(SignalRow.id == signal_id)
                            .values(error=reason[:4000])
                            .execution_options(synchronize_session=False))
            return True

    @staticmethod
    def _settle(session: Session, signal_id: str, status: SignalStatus, reason: str,
                retryable: bool = False) -> bool:
        current = session.scalar(select(SignalRow.status).where(SignalRow.id == signal_id))
        if current is None or status not in allowed_targets(current, "system"):
            return False
        session.execute(update(SignalRow).where(SignalRow.id == signal_id,
                                                SignalRow.status == current)
                        .values(status=status.value, status_reason=reason[:4000],
                                retryable=retryable, updated_at=utcnow())
                        .execution_options(synchronize_session=False))
        return True

    # --- orders ledger -------------------------------------------------------------------

    def executable_signals(self, symbol: str) -> list[SignalRow]:
        """Approved live signals of the symbol with no order that could still exist, oldest
        first."""
        with self.session() as session:
            return list(session.scalars(
                select(SignalRow).where(SignalRow.symbol == validate_symbol(symbol),
                                        *_AWAITING_ORDER)
                .order_by(SignalRow.created_at)
            ).all())

    def claim_order(self, signal_id: str, symbol: str, broker: str, action: str,
                    quantity: float, order_type: str, limit_price: float | None,
                    stop_loss: float | None, take_profit: float | None) -> OrderRow | None:
        """Write the next attempt's ledger row *before* the broker is called; None if an order
        of the signal could still exist or the signal is no longer approved.

        The unique (signal id, attempt) makes a second claim fail, so two runs cannot both
        place; the signal's status is checked under its lock in the same transaction, so a
        review cannot change it between the check and the claim.
        """
        try:
            with self.session() as session:
                if not lock_signal(session, signal_id, *_AWAITING_ORDER):
                    return None
                attempt = 1 + (session.scalar(select(func.max(OrderRow.attempt))
                                              .where(OrderRow.signal_id == signal_id)) or 0)
                row = OrderRow(signal_id=signal_id, attempt=attempt,
                               order_ref=order_ref(signal_id, attempt), symbol=symbol,
                               broker=broker, action=action, quantity=quantity,
                               order_type=order_type, limit_price=limit_price,
                               stop_loss=stop_loss, take_profit=take_profit, status="submitting")
                session.add(row)
            return row
        except IntegrityError:
            return None

    def update_order(self, signal_id: str, order: BrokerOrder | None, error: str = "") -> None:
        """Record what the broker said about the signal's latest attempt, settle the signal
        (executed once the entry filled, working while it rests, order_failed with the broker's
        reason when it ended unfilled) and keep the trade it made up to date."""
        with self.session() as session:
            row = _latest_order(session, signal_id)
            if row is None:
                raise KeyError(f"No order in the ledger for signal {signal_id!r}.")
            before = row.filled or 0.0
            if order is not None:
                row.status, row.filled = order.status, order.filled
                row.avg_fill_price, row.commission = order.avg_fill_price, order.commission
                row.broker_order_id = order.broker_order_id
                if order.reason:
                    row.error = order.reason[:4000]
            if error:
                row.error = error[:4000]
                row.status = UNKNOWN if order is None else row.status
            row.updated_at = utcnow()
            if order is None:
                return
            outcome, note = outcome_of(order.status, order.filled, order.quantity)
            if outcome is SignalStatus.ORDER_FAILED:
                note = (f"broker {order.status} order {row.order_ref}: "
                        f"{order.reason or 'no reason given'}")
            # only an approved (or working) signal is settled, never a rejected one
            self._settle(session, signal_id, outcome, note)
            if row.action == "SELL" and row.stop_loss is None and row.take_profit is None:
                # A plain SELL closes what earlier BUYs opened (once, as its fill arrives).
                if order.filled > before and order.avg_fill_price:
                    self._close_open_buys(session, row, order, order.filled - before)
                return
            update = trade_from_order(row.order_ref, signal_id, order, row.stop_loss,
                                      row.take_profit)
            if update is not None:
                _apply_trade(session, update)

    @staticmethod
    def _close_open_buys(session: Session, row: OrderRow, order: BrokerOrder,
                         quantity: float) -> None:
        """Close the symbol's open trades without a bracket, oldest first, with the `quantity`
        this SELL newly filled."""
        trades = session.scalars(select(TradeRow).where(
            TradeRow.symbol == row.symbol, TradeRow.status == "open", TradeRow.side == "BUY",
            TradeRow.stop_loss.is_(None)).order_by(TradeRow.id)).all()
        left = quantity
        for trade in trades:
            if left <= 0:
                break
            take = min(left, trade.quantity - trade.exit_quantity)
            _close(trade, take, order.avg_fill_price or 0.0, order.filled_on,
                   f"closed by SELL signal {row.signal_id}",
                   order.commission * take / order.filled if order.filled else 0.0)
            left -= take

    def open_trades(self, symbol: str | None = None) -> list[TradeRow]:
        query = select(TradeRow).where(TradeRow.status == "open")
        if symbol:
            query = query.where(TradeRow.symbol == validate_symbol(symbol))
        with self.session() as session:
            return list(session.scalars(query.order_by(TradeRow.id)).all())

    def trades(self, symbol: str | None = None, signal_id: str | None = None,
               limit: int = 500) -> list[TradeRow]:
        """Trades newest first, of a symbol or a signal."""
        query = select(TradeRow)
        if symbol:
            query = query.where(TradeRow.symbol == validate_symbol(symbol))
        if signal_id:
            query = query.where(TradeRow.signal_id == signal_id)
        with self.session() as session:
            return list(session.scalars(query.order_by(TradeRow.id.desc()).limit(limit)).all())

    def followed_orders(self, symbol: str) -> list[OrderRow]:
        """Ledger rows the broker may still change: entries still working, and filled brackets
        whose exits have not closed the trade yet. Each orders run asks the broker about them."""
        open_brackets = select(TradeRow.order_ref).where(TradeRow.status == "open",
                                                         TradeRow.stop_loss.is_not(None))
        with self.session() as session:
            return list(session.scalars(select(OrderRow).where(
                OrderRow.symbol == validate_symbol(symbol),
                OrderRow.status.in_(sorted(WORKING_BROKER_STATUSES))
                | OrderRow.order_ref.in_(open_brackets)).order_by(OrderRow.id)).all())

    def record_unplaced(self, order_id: int, status: str, evidence: str) -> None:
        """A crashed placement the broker does not show: `unknown` (ask again next run) or
        `not_placed` (the rule in docs/lifecycle.md held); not_placed also settles the signal."""
        with self.session() as session:
            row = session.get(OrderRow, order_id)
            if row is None:
                raise KeyError(f"No ledger row {order_id}.")
            row.status, row.error, row.updated_at = status, evidence[:4000], utcnow()
            if status == NOT_PLACED:
                self._settle(session, row.signal_id, SignalStatus.NOT_PLACED,
                             f"order {row.order_ref} not placed: {evidence}", retryable=True)

    def order_for_signal(self, signal_id: str) -> OrderRow | None:
        """The signal's latest order attempt, if any."""
        with self.session() as session:
            return _latest_order(session, signal_id)

    def unresolved_orders(self, symbol: str) -> list[OrderRow]:
        """Ledger rows whose placement outcome is unknown (a crash or timeout mid-placement)."""
        with self.session() as session:
            return list(session.scalars(select(OrderRow).where(
                OrderRow.symbol == validate_symbol(symbol),
                OrderRow.status.in_(sorted(UNRESOLVED_LEDGER)),
            )).all())

    def list_orders(self, symbol: str | None = None, limit: int = 200) -> list[OrderRow]:
        query = select(OrderRow)
        if symbol:
            query = query.where(OrderRow.symbol == validate_symbol(symbol))
        with self.session() as session:
            return list(session.scalars(query.order_by(OrderRow.created_at.desc(),
                                                       OrderRow.id.desc()).limit(limit)).all())

    def record_decision(self, symbol: str, signal_id: str, placed: bool, reason: str,
                        dagster_run_id: str = "") -> None:
        with self.session() as session:
            session.add(OrderDecisionRow(symbol=symbol, signal_id=signal_id, placed=placed,
                                         reason=reason, dagster_run_id=dagster_run_id))

    def decisions_for(self, symbol: str, limit: int = 50) -> list[OrderDecisionRow]:
        with self.session() as session:
            return list(session.scalars(
                select(OrderDecisionRow).where(OrderDecisionRow.symbol == validate_symbol(symbol))
                .order_by(OrderDecisionRow.id.desc()).limit(limit)
            ).all())

    def orders_summary(self, symbol: str, newest: SignalRow, run_ids: Sequence[str]) -> str:
        """Every order decision these runs made for any signal of the symbol (an older
        approval may be placed beside a new pending signal), else the newest signal's order:
        what a run's summary says under "order" (the CLI table, the app's Run now)."""
        made = [d for d in self.decisions_for(symbol, limit=50)
                if d.dagster_run_id and d.dagster_run_id in run_ids]
        if not made:
            if newest.status == SignalStatus.ERROR.value:
                return f"none: {newest.error[:80]}"
            order = self.order_for_signal(newest.id)
            return f"{order.action} {order.quantity:g} {order.status}" if order else "none"
        lines = []
        for decision in reversed(made):
            text = decision.reason
            if decision.placed and (order := self.order_for_signal(decision.signal_id)):
                text += f": {order.status}"
            if decision.signal_id not in (newest.id, ""):
                text = f"signal {decision.signal_id[:8]}: {text}"
            lines.append(text)
        return "; ".join(lines)

    def record_equity_point(self, broker: str, account: AccountSnapshot,
                            positions: Sequence[Position], bar_date: date | None,
                            run_id: str = "") -> EquityPointRow:
        """The account at one portfolio materialization: a point of the equity curve."""
        with self.session() as session:
            row = EquityPointRow(
                broker=broker[:32], account=account.account[:32], at=utcnow(),
                bar_date=bar_date, cash=account.cash, equity=account.equity,
                realized_pnl=account.realized_pnl, unrealized_pnl=account.unrealized_pnl,
                positions={p.symbol: {"quantity": p.quantity, "avg_cost": p.avg_cost,
                                      "market_value": p.market_value,
                                      "unrealized_pnl": p.unrealized_pnl,
                                      "realized_pnl": p.realized_pnl} for p in positions},
                dagster_run_id=run_id)
            session.add(row)
        return row

    def equity_curve(self, account: str | None = None, limit: int = 2000
                     ) -> list[EquityPointRow]:
        """The account's equity points, oldest first (the last `limit`)."""
        query = select(EquityPointRow)
        if account:
            query = query.where(EquityPointRow.account == account)
        with self.session() as session:
            rows = session.scalars(query.order_by(EquityPointRow.at.desc(),
                                                  EquityPointRow.id.desc()).limit(limit)).all()
        return list(reversed(rows))

    def recent_decisions(self, limit: int = 50) -> list[OrderDecisionRow]:
        """The orders asset's latest decisions over all symbols, newest first."""
        with self.session() as session:
            return list(session.scalars(
                select(OrderDecisionRow).order_by(OrderDecisionRow.id.desc()).limit(limit)
            ).all())

    # --- automation (trading_assets/automation.py) ---------------------------------------

    def signals_awaiting_execution(self, limit: int = 1000) -> list[SignalRow]:
        """Approved or auto-approved live signals, oldest first: each still needs an orders run
        (to place, refuse with a reason, or reconcile an unresolved placement)."""
        with self.session() as session:
            return list(session.scalars(
                select(SignalRow).where(*_EXECUTABLE).order_by(SignalRow.created_at).limit(limit)
            ).all())

    def symbols_with_unexecuted_approvals(self) -> set[str]:
        """Symbols with an approved or auto-approved live signal that is not settled yet."""
        with self.session() as session:
            return set(session.scalars(
                select(SignalRow.symbol).where(*_EXECUTABLE).distinct()
            ).all())

    # --- analysis claims ---------------------------------------------------------------

    def claim_holders(self, keys: Sequence[tuple[str, date]], analyst: str,
                      holder: str) -> set[str]:
        """The other holders of claims on these analyses (to ask whether their runs live)."""
        wanted = set(keys)
        with self.session() as session:
            rows = session.execute(
                select(AnalysisClaimRow.symbol, AnalysisClaimRow.bar_date,
                       AnalysisClaimRow.holder).where(
                    AnalysisClaimRow.analyst == analyst, AnalysisClaimRow.holder != holder,
                    AnalysisClaimRow.symbol.in_({symbol for symbol, _ in wanted}))).all()
        return {other for symbol, bar_date, other in rows if (symbol, bar_date) in wanted}

    def claim_analyses(self, keys: Sequence[tuple[str, date]], analyst: str, holder: str,
                       lease_s: float, dead_holders: Collection[str] = ()) -> list[bool]:
        """Take (or renew, or take over an expired) claim on each (symbol, bar date) analysis,
        in one transaction: True where this holder now has it, False while another's lease runs.
        A claim of `dead_holders` (runs that ended or whose process died) is taken over at
        once, whatever its lease.

        One commit for the whole run (a commit per symbol, each waiting for an fsync, cost a
        500-symbol run seconds). The conditional UPDATE keeps the take-over atomic; should
        another run insert a claim between the read and the commit, the batch rolls back and
        each key is claimed on its own.
        """
        now = utcnow()
        expires = now + timedelta(seconds=lease_s)
        try:
            with self.session() as session:
                held = set(session.execute(
                    select(AnalysisClaimRow.symbol, AnalysisClaimRow.bar_date).where(
                        AnalysisClaimRow.analyst == analyst,
                        AnalysisClaimRow.symbol.in_({symbol for symbol, _ in keys}))).all())
                taken = []
                for symbol, bar_date in keys:
                    if (symbol, bar_date) not in held:
                        session.add(AnalysisClaimRow(symbol=symbol, bar_date=bar_date,
                                                     analyst=analyst, holder=holder,
                                                     expires_at=expires))
                        taken.append(True)
                        continue
                    taken.append(_renew_claim(session, (symbol, bar_date, analyst), holder,
                                              expires, now, dead_holders))
            return taken
        except IntegrityError:  # another run claimed one of them just now
            return [self._claim_one(symbol, bar_date, analyst, holder, expires, now,
                                    dead_holders) for symbol, bar_date in keys]

    def _claim_one(self, symbol: str, bar_date: date, analyst: str, holder: str,
                   expires: datetime, now: datetime, dead_holders: Collection[str]) -> bool:
        with self.session() as session:
            if _renew_claim(session, (symbol, bar_date, analyst), holder, expires, now,
                            dead_holders):
                return True
        try:
            with self.session() as session:
                session.add(AnalysisClaimRow(symbol=symbol, bar_date=bar_date, analyst=analyst,
                                             holder=holder, expires_at=expires))
            return True
        except IntegrityError:  # another run holds it (or took it just now)
            return False

    def release_analyses(self, keys: Sequence[tuple[str, date]], analyst: str,
                         holder: str) -> None:
        """Give the claims back once their signals (or errors) are stored, in one commit."""
        with self.session() as session:
            for symbol, bar_date in keys:
                session.execute(delete(AnalysisClaimRow).where(
                    AnalysisClaimRow.symbol == symbol, AnalysisClaimRow.bar_date == bar_date,
                    AnalysisClaimRow.analyst == analyst, AnalysisClaimRow.holder == holder))


def _renew_claim(session: Session, key: tuple[str, date, str], holder: str, expires: datetime,
                 now: datetime, dead_holders: Collection[str] = ()) -> bool:
    """Renew this holder's claim or take over an expired one or a dead holder's, atomically;
    False if held."""
    symbol, bar_date, analyst = key
    free = (AnalysisClaimRow.expires_at < now) | (AnalysisClaimRow.holder == holder)
    if dead_holders:
        free = free | AnalysisClaimRow.holder.in_(sorted(dead_holders))
    result = session.execute(
        update(AnalysisClaimRow).where(
            AnalysisClaimRow.symbol == symbol, AnalysisClaimRow.bar_date == bar_date,
            AnalysisClaimRow.analyst == analyst, free)
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


def _apply_trade(session: Session, update: TradeUpdate) -> None:
    """Insert or refresh the trade of one filled order; the broker's report is the truth, so
    applying the same report twice changes nothing."""
    trade = session.scalars(select(TradeRow).where(TradeRow.order_ref == update.order_ref)
                            ).first()
    if trade is None:
        trade = TradeRow(order_ref=update.order_ref, signal_id=update.signal_id,
                         symbol=update.symbol, side=update.side, status="open",
                         exit_quantity=0.0, exit_reason="", commission=0.0)
        session.add(trade)
    trade.quantity, trade.entry_price = update.quantity, update.entry_price
    trade.entry_on = trade.entry_on or update.entry_on
    trade.stop_loss, trade.take_profit = update.stop_loss, update.take_profit
    trade.commission = update.commission
    if update.exit_price is not None:
        trade.exit_quantity, trade.exit_price = update.exit_quantity, update.exit_price
        trade.exit_on = trade.exit_on or update.exit_on
        trade.exit_reason = update.exit_reason
        _score(trade)
    trade.updated_at = utcnow()


def _close(trade: TradeRow, quantity: float, price: float, on: date | None, reason: str,
           commission: float) -> None:
    """Add one closing fill (a SELL signal's order) to the trade: weighted exit price."""
    done = trade.exit_quantity
    trade.exit_price = ((trade.exit_price or 0.0) * done + price * quantity) / (done + quantity)
    trade.exit_quantity = done + quantity
    trade.exit_on, trade.exit_reason = on or trade.exit_on, reason
    trade.commission += commission
    _score(trade)
    trade.updated_at = utcnow()


def _score(trade: TradeRow) -> None:
    trade.realized_pnl, trade.r_multiple = trade_result(
        trade.side, trade.entry_price, trade.exit_price or 0.0, trade.exit_quantity,
        trade.stop_loss, trade.commission)
    trade.status = "closed" if trade.exit_quantity >= trade.quantity else "open"
