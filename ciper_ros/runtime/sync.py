"""Synchronise a camera rig's images by stamp (no ROS; the node feeds it).

Cameras of one rig are triggered together but their images arrive one by one, in any
order. :class:`StampSync` keeps the last few images of each camera and hands out a set
once every camera has one within ``tolerance_ns`` of the first camera's (the reference)
stamp: the newest such set, so a slow model skips to the present as it does for one
camera. Older images of every camera are then dropped; a camera that never delivers keeps
the rig from localizing, and :attr:`StampSync.waiting` says which.
"""

from __future__ import annotations

from collections import deque
import threading


class StampSync:
    """Match one item per camera by stamp (thread-safe)."""

    def __init__(self, *, cameras: int, tolerance_ns: int, depth: int = 8) -> None:
        if cameras < 1:
            raise ValueError(f'a rig needs at least one camera, got {cameras}')
        self.tolerance_ns = int(tolerance_ns)
        self._queues: list[deque] = [deque(maxlen=depth) for _ in range(cameras)]
        self._lock = threading.Lock()
        self.matched = 0
        self.dropped = 0                 # images that left a queue without being matched

    def add(self, camera: int, stamp_ns: int, item) -> tuple[int, tuple] | None:
        """Add camera ``camera``'s item; (reference stamp, one item per camera) or None."""
        with self._lock:
            q = self._queues[camera]
            if len(q) == q.maxlen:
                self.dropped += 1
            q.append((int(stamp_ns), item))
            ref = self._queues[0]
            for t0, first in reversed(ref):            # the newest complete set wins
                picks = [first]
                for other in self._queues[1:]:
                    near = [(abs(t - t0), it) for t, it in other
                            if abs(t - t0) <= self.tolerance_ns]
                    if not near:
                        break
                    picks.append(min(near, key=lambda p: p[0])[1])
                else:
                    self._drop_through(t0)
                    self.matched += 1
                    return t0, tuple(picks)
            return None

    def _drop_through(self, t0: int) -> None:
        """Forget every image at or before the matched set (stamp + tolerance)."""
        for q in self._queues:
            keep = [(t, it) for t, it in q if t > t0 + self.tolerance_ns]
            self.dropped += max(len(q) - len(keep) - 1, 0)     # all but the one matched
            q.clear()
            q.extend(keep)

    def waiting(self) -> list[int]:
        """Give the cameras with no image queued (what a rig frame waits for)."""
        with self._lock:
            return [i for i, q in enumerate(self._queues) if not q]

    def clear(self) -> None:
        with self._lock:
            for q in self._queues:
                q.clear()
