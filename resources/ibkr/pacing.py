"""IBKR's historical-data pacing limits, enforced in-process before a bars request is sent."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class HistoricalPacer:
    """IBKR's historical-data pacing rules, enforced in-process before a request is sent.

    IBKR documents, for small bars and as a soft limit for larger ones: at most 60 historical
    requests in any 10 minutes, no identical request within 15 s, and no more than 6 for one
    contract within 2 s. Breaking them earns error 162 and a penalty box for the whole
    session, so a platform looping over hundreds of symbols stays under the strict limits:
    it waits for a free slot, and serves an identical request from a 15-second cache.
    """

    def __init__(
        self,
        max_requests: int = 60,
        window_s: float = 600.0,
        identical_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = max_requests
        self.window_s = window_s
        self.identical_s = identical_s
        self._clock = clock
        self._sent: deque[float] = deque()
        self._recent: dict[Hashable, tuple[float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a request slot and return 0, or return the seconds until a slot frees up."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= self.window_s:
                self._sent.popleft()
            if len(self._sent) < self.max_requests:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + self.window_s - now

    def cached(self, key: Hashable) -> pd.DataFrame | None:
        """The answer to an identical request made within `identical_s`, if any."""
        with self._lock:
            hit = self._recent.get(key)
            if hit is None or self._clock() - hit[0] >= self.identical_s:
                self._recent.pop(key, None)
                return None
            return hit[1].copy()

    def remember(self, key: Hashable, frame: pd.DataFrame) -> None:
        with self._lock:
            now = self._clock()
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < self.identical_s}
            self._recent[key] = (now, frame.copy())

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self._recent.clear()


_PACER = HistoricalPacer()


def reset_pacing() -> None:
    """Forget pacing history and cached bars (tests; a process that knows the gateway restarted)."""
    _PACER.reset()
