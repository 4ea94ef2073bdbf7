"""A thread-safe LRU cache of decoded tiles, bounded in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
import os
import threading

import numpy as np

from ciper_ros.util.errors import UserError


class LRUTileCache:
    """Least-recently-used cache of numpy arrays, capacity in megabytes (0 disables it)."""

    def __init__(self, *, capacity_mb: float = 64.0) -> None:
        if not capacity_mb >= 0.0:
            raise UserError(f'cache capacity must be >= 0 MB, got {capacity_mb}')
        self.capacity_bytes = int(capacity_mb * 1024 * 1024)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.hits = 0
        self.misses = 0

    def _guard(self) -> threading.Lock:
        """Return the lock, new in a forked child (another thread may have held it at fork)."""
        if os.getpid() != self._pid:
            self._lock, self._pid = threading.Lock(), os.getpid()
        return self._lock

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get_or_load(self, key: Hashable, load: Callable[[], np.ndarray]) -> np.ndarray:
        """Return the value cached under ``key``, else ``load()`` it (outside the lock)."""
        with self._guard():
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return value
            self.misses += 1
        value = load()
        value.setflags(write=False)  # shared between callers: never mutated in place
        self.put(key, value)
        return value

    def put(self, key: Hashable, value: np.ndarray) -> None:
        nbytes = value.nbytes
        if nbytes > self.capacity_bytes:
            return
        with self._guard():
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = value
            self._bytes += nbytes
            while self._bytes > self.capacity_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._guard():
            self._items.clear()
            self._bytes = 0
