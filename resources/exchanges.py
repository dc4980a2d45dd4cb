"""The recorded exchange store: every model answer kept once, keyed by its request digest.

An answer (with the request as the digest saw it, its token usage and cost, and the redacted
transcript of the call) is a JSON object in the object store (exchanges/<aa>/<digest>.json);
its index row (llm_exchanges, resources/app_tables.py) is in the application database. A team
that shares those two stores shares the answers. resources/llm_openai.py looks a request up
before calling the model and hands every new answer to `record`; LLM_CACHE
(trading_assets/core/exchanges.py) decides which of the two does anything.

Two runs that record the same request at once keep one answer: the index row is inserted
before the object is written, in one transaction, so the second insert waits for the first
to commit, fails on the primary key, and the loser reads the winner's answer instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from resources.app_db import AppDatabase
from resources.app_tables import ExchangeRow
from resources.object_store import ObjectStore
from trading_assets.core.exchanges import (
    CACHE_MODES,
    ExchangeRequest,
    reads_store,
    strict_miss_error,
    writes_store,
)
from trading_assets.core.keys import exchange_key
from trading_assets.core.secrets import redact

# A strict-mode miss compares the request with at most this many recorded ones of the same
# symbol and bar date (the newest).
NEAREST_LIMIT = 50


class ExchangeStoreError(RuntimeError):
    """The store could not be read or written; the message says which and what to do."""


@dataclass(frozen=True)
class RecordedAnswer:
    """One recorded answer: the model's signal fields and what the call cost when made."""

    request_key: str
    answer: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    recorded_at: str = ""
    transcript: dict[str, Any] | None = None
    reused: bool = False  # record() lost to a concurrent run: this is that run's answer


@dataclass
class ExchangeTally:
    """Where one run's (or one replay's) model answers came from, and what they cost.

    Shared by the analyst's worker threads, hence the lock.
    """

    from_store: int = 0
    from_model: int = 0
    refused: int = 0  # strict-mode misses: no call made
    unrecorded: int = 0  # answers the store could not keep
    spent_usd: float = 0.0  # what the model calls cost
    saved_usd: float = 0.0  # what the answers taken from the store cost when recorded
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, from_store: int = 0, from_model: int = 0, refused: int = 0,
            unrecorded: int = 0, spent_usd: float = 0.0, saved_usd: float = 0.0,
            error: str = "") -> None:
        with self._lock:
            self.from_store += from_store
            self.from_model += from_model
            self.refused += refused
            self.unrecorded += unrecorded
            self.spent_usd += spent_usd
            self.saved_usd += saved_usd
            if error and len(self.errors) < 5:
                self.errors.append(error)


class ExchangeStore:
    """Recorded answers for one run, in one LLM_CACHE mode (core/exchanges.py CACHE_MODES)."""

    def __init__(self, store: ObjectStore, app_db: AppDatabase, mode: str, run_id: str = "",
                 tally: ExchangeTally | None = None) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"LLM_CACHE={mode!r} is unknown; use one of "
                             f"{', '.join(CACHE_MODES)}.")
        self.store, self.app_db, self.mode, self.run_id = store, app_db, mode, run_id
        self.tally = tally if tally is not None else ExchangeTally()

    def lookup(self, request: ExchangeRequest) -> RecordedAnswer | None:
        """The recorded answer to exactly this request; None on a miss or when the mode
        reads nothing. Raises ExchangeStoreError when the store cannot be read."""
        if not reads_store(self.mode):
            return None
        return self._read_checked(request.key)

    def record(self, request: ExchangeRequest, answer: dict[str, Any],
               usage: dict[str, Any], transcript: dict[str, Any] | None) -> RecordedAnswer:
        """Keep a new answer (record mode only) and return the answer the store now holds
        for the request: this one, or the one a concurrent run recorded first. Raises
        ExchangeStoreError when it cannot be kept (the answer itself stays valid)."""
        now = datetime.now(UTC).isoformat()
        mine = RecordedAnswer(request.key, answer, int(usage.get("prompt_tokens", 0)),
                              int(usage.get("completion_tokens", 0)),
                              float(usage.get("cost_usd", 0.0)), now, transcript)
        if not writes_store(self.mode):
            return mine
        key = exchange_key(request.key)
        document = redact({
            "request_key": request.key, "recorded_at": now,
            "request": {"symbol": request.symbol, "bar_date": request.bar_date.isoformat(),
                        "model": request.model, "prompt_version": request.prompt_version,
                        "messages": list(request.messages), "images": list(request.images),
                        "params": dict(request.params), "parts": request.parts},
            "answer": answer,
            "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens",
                                                "cost_usd")},
            "transcript": transcript,
        })
        parts = request.parts
        row = ExchangeRow(
            request_key=request.key, symbol=request.symbol, bar_date=request.bar_date,
            model=request.model[:128], prompt_version=request.prompt_version[:128],
            images_sha256=parts["images"], params_sha256=parts["params"],
            schema_sha256=parts["schema"], messages_sha256=parts["messages"],
            object_key=key, prompt_tokens=mine.prompt_tokens,
            completion_tokens=mine.completion_tokens, cost_usd=mine.cost_usd,
            dagster_run_id=self.run_id)
        try:
            with self.app_db.session() as session:
                session.add(row)
                # The insert takes the key now: a concurrent recorder waits here until this
                # transaction ends, and sees the object written below once it does.
                session.flush()
                self.store.write_json(key, document)
        except IntegrityError:
            winner = self._read_checked(request.key)
            return mine if winner is None else replace(winner, reused=True)
        except Exception as exc:
            raise ExchangeStoreError(
                f"the answer was not recorded ({type(exc).__name__}: {str(exc)[:200]}); the "
                "signal itself is kept. Check the object store and APP_DATABASE_URL.") from exc
        return mine

    def miss_error(self, request: ExchangeRequest) -> str:
        """Why a strict-mode request found nothing: the parts in which the nearest recorded
        request of the same symbol and bar date differs."""
        try:
            with self.app_db.session() as session:
                rows = session.scalars(
                    select(ExchangeRow).where(ExchangeRow.symbol == request.symbol,
                                              ExchangeRow.bar_date == request.bar_date)
                    .order_by(ExchangeRow.created_at.desc()).limit(NEAREST_LIMIT)).all()
        except Exception as exc:  # the miss stands; only its explanation is lost
            return (f"LLM_CACHE=strict: no recorded answer matches this request for "
                    f"{request.symbol} {request.bar_date}, so the model was not called (the "
                    f"recorded requests could not be compared: {type(exc).__name__}).")
        recorded = [{"model": r.model, "prompt_version": r.prompt_version,
                     "images": r.images_sha256, "params": r.params_sha256,
                     "schema": r.schema_sha256, "messages": r.messages_sha256} for r in rows]
        return strict_miss_error(request.symbol, request.bar_date, request.parts, recorded)

    def count(self) -> int:
        """How many answers are recorded (all symbols)."""
        from sqlalchemy import func

        with self.app_db.session() as session:
            return int(session.scalar(select(func.count()).select_from(ExchangeRow)) or 0)

    def _read_checked(self, request_key: str) -> RecordedAnswer | None:
        """_read, with any failure as an ExchangeStoreError saying what to do."""
        try:
            return self._read(request_key)
        except ExchangeStoreError:
            raise
        except Exception as exc:
            raise ExchangeStoreError(
                f"the recorded exchange store could not be read ({type(exc).__name__}: "
                f"{str(exc)[:200]}), so no model call was made. Check the object store and "
                "APP_DATABASE_URL, or set LLM_CACHE=off to call the model without the "
                "store.") from exc

    def _read(self, request_key: str) -> RecordedAnswer | None:
        with self.app_db.session() as session:
            row = session.get(ExchangeRow, request_key)
        if row is None:
            return None
        document = self.store.read_json(row.object_key)
        if not isinstance(document, dict) or not isinstance(document.get("answer"), dict):
            raise ExchangeStoreError(f"recorded answer {row.object_key} is not an answer "
                                     "document; delete it and its llm_exchanges row.")
        return RecordedAnswer(row.request_key, document["answer"], row.prompt_tokens,
                              row.completion_tokens, float(row.cost_usd),
                              str(document.get("recorded_at", "")),
                              document.get("transcript"))

