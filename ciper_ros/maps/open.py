"""Open any supported map store by path."""

from __future__ import annotations

import os
from pathlib import Path

from ciper_ros.maps.mbtiles import MBTilesStore
from ciper_ros.maps.store import TileStore
from ciper_ros.maps.xyz import XYZFolderStore


def open_store(path: str | os.PathLike, *, cache_mb: float = 64.0) -> TileStore:
    """Open an MBTiles file or an XYZ tile folder, by what ``path`` is."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f'map {p} does not exist')
    if p.is_dir():
        return XYZFolderStore(p, cache_mb=cache_mb)
    return MBTilesStore(p, cache_mb=cache_mb)
