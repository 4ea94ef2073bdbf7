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


def store_summary(store: TileStore, path: str | os.PathLike) -> dict:
    """Summarize an open store (``ciper map info``): format, bounds, tiles per zoom."""
    from ciper_ros.geo import mercator

    meta = store.metadata
    lat_c, _ = meta.bounds.center_latlon_deg
    per_zoom = {z: store.tile_count(z) for z in meta.zooms}
    return {
        'path': str(path),
        'type': type(store).__name__,
        'name': meta.name,
        'format': meta.format,
        'tile_px': meta.tile_px,
        'bounds': {'west_deg': meta.bounds.west_deg, 'south_deg': meta.bounds.south_deg,
                   'east_deg': meta.bounds.east_deg, 'north_deg': meta.bounds.north_deg},
        'minzoom': meta.minzoom,
        'maxzoom': meta.maxzoom,
        'tile_count': sum(per_zoom.values()),
        'tiles_per_zoom': per_zoom,
        'm_per_px_at_center': {
            z: round(mercator.ground_resolution_m_per_px(lat_c, z, tile_px=meta.tile_px), 6)
            for z in meta.zooms},
    }
