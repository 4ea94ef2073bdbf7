"""A thread-safe, time-sorted buffer of stamped values: the base of every sensor buffer."""

from __future__ import annotations

from bisect import insort
import threading

TIME_JUMP_BACK_S = 1.0      # a message this much older than the newest: the clock went back


class StampedBuffer:
    """Values keyed by stamp (ns), sorted, bounded by a horizon behind the newest.

    A value much older than the newest (``TIME_JUMP_BACK_S``) means the clock went back (a
    bag looped, a simulation restarted): the history is void and is cleared.
    """

    def __init__(self, *, horizon_s: float) -> None:
        self.horizon_ns = int(horizon_s * 1e9)
        self._lock = threading.Lock()
        self._t: list[int] = []
        self._v: dict[int, object] = {}
        self.resets = 0

    def __len__(self) -> int:
        return len(self._t)

    def clear(self) -> None:
        with self._lock:
            self._t.clear()
            self._v.clear()

    def _add(self, stamp_ns: int, value) -> None:
        with self._lock:
            if self._t and stamp_ns < self._t[-1] - TIME_JUMP_BACK_S * 1e9:
                self._t.clear()                  # bag looped / clock reset: history is void
                self._v.clear()
                self.resets += 1
            if stamp_ns not in self._v:
                insort(self._t, stamp_ns)
            self._v[stamp_ns] = value
            cutoff = self._t[-1] - self.horizon_ns
            while self._t and self._t[0] < cutoff:
                self._v.pop(self._t.pop(0))

    def newest_ns(self) -> int | None:
        with self._lock:
            return self._t[-1] if self._t else None
