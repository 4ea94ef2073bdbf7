"""XYZ folder map store: ``ROOT/{z}/{x}/{y}.{png,jpg,webp}`` plus optional ``metadata.json``.

``metadata.json`` (written by :class:`XYZWriter`) holds name, format, bounds
('west,south,east,north') and zooms; without it they are derived from the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import time

import numpy as np

from ciper_ros.geo import mercator
from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.maps.codec import (
    decode_rgb,
    encode_rgb,
    extension,
    FORMATS,
    normalize_format,
)
from ciper_ros.maps.errors import MapStoreError, NotAMapError
from ciper_ros.maps.store import MapMetadata, TileStore
from ciper_ros.util.atomic import atomic_write_bytes
from ciper_ros.util.errors import UserError

METADATA_FILE = 'metadata.json'
# util.atomic's temporary names, '.<final name>.<random>.tmp', for tiles and the metadata
_TEMP_NAME = re.compile(r'\.(\d+\.(png|jpg|webp)|metadata\.json)\.[^.]+\.tmp')


class XYZFolderStore(TileStore):
    def __init__(self, root: str | os.PathLike, *, cache_mb: float = 64.0) -> None:
        super().__init__(cache_mb=cache_mb)
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotAMapError(f'{self.root} is not a folder of XYZ tiles')
        self._ext: str | None = None

    @property
    def source(self) -> str:
        return str(self.root)

    def _zoom_dirs(self) -> list[int]:
        return sorted(int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())

    def _tile_path(self, zoom: int, x: int, y: int) -> Path | None:
        if self._ext is None:
            self._ext = extension(self.metadata.format)
        p = self.root / str(zoom) / str(x) / f'{y}{self._ext}'
        return p if p.is_file() else None

    def _read_tile_bytes(self, zoom: int, x: int, y: int) -> bytes | None:
        p = self._tile_path(zoom, x, y)
        return p.read_bytes() if p is not None else None

    def _tiles(self, zoom: int) -> list[tuple[int, int]]:
        zdir = self.root / str(zoom)
        if not zdir.is_dir():
            return []
        out = []
        for xdir in zdir.iterdir():
            if xdir.is_dir() and xdir.name.isdigit():
                out.extend((int(xdir.name), int(f.stem)) for f in xdir.iterdir()
                           if f.stem.isdigit() and f.suffix.lstrip('.').lower() in
                           ('png', 'jpg', 'jpeg', 'webp'))
        return out

    def tile_count(self, zoom: int | None = None) -> int:
        zooms = self.metadata.zooms if zoom is None else (zoom,)
        return sum(len(self._tiles(z)) for z in zooms)

    def _load_metadata(self) -> MapMetadata:
        meta_path = self.root / METADATA_FILE
        raw: dict = {}
        if meta_path.is_file():
            try:
                raw = json.loads(meta_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise NotAMapError(f'{meta_path} is not valid JSON: {e}') from None
        zooms = tuple(z for z in self._zoom_dirs() if self._tiles(z))
        if not zooms:
            raise NotAMapError(f'{self.root} holds no tiles in {{z}}/{{x}}/{{y}}.png|jpg form')
        x, y = self._tiles(zooms[-1])[0]
        candidates = [self.root / str(zooms[-1]) / str(x) / f'{y}.{e}'
                      for e in ('png', 'jpg', 'jpeg', 'webp')]
        sample = next(p for p in candidates if p.is_file())
        rgb = decode_rgb(sample.read_bytes(), what=str(sample))
        fmt = normalize_format(raw.get('format', sample.suffix.lstrip('.')))
        if fmt not in FORMATS:
            raise NotAMapError(f'{self.root}: unsupported tile format {fmt}')
        if 'bounds' in raw:
            bounds = LatLonBounds.from_string(str(raw['bounds']))
        else:
            z = zooms[-1]
            xs, ys = zip(*self._tiles(z), strict=True)
            bounds = mercator.tile_range_bounds(z, (min(xs), max(xs)), (min(ys), max(ys)))
        extra = {k: v for k, v in raw.items() if k not in ('name', 'format', 'bounds', 'zooms')}
        return MapMetadata(name=str(raw.get('name', self.root.name)), format=fmt,
                           bounds=bounds, zooms=zooms, tile_px=int(rgb.shape[0]), extra=extra)


class XYZWriter:
    """Writes an XYZ folder; every tile and the metadata file are written atomically."""

    def __init__(self, root: str | os.PathLike, *, name: str, fmt: str = 'png',
                 bounds: LatLonBounds | None = None, jpeg_quality: int = 90) -> None:
        self.root = Path(root)
        self.name = name
        self.fmt = normalize_format(fmt)
        self.bounds = bounds
        self.jpeg_quality = jpeg_quality
        self._zooms: set[int] = set()
        self._started_s = time.time()
        self.root.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> XYZWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()

    def _path(self, zoom: int, x: int, y: int) -> Path:
        return self.root / str(zoom) / str(x) / f'{y}{extension(self.fmt)}'

    def has_tile(self, zoom: int, x: int, y: int) -> bool:
        return self._path(zoom, x, y).is_file()

    def put_tile(self, zoom: int, x: int, y: int, tile: np.ndarray | bytes) -> None:
        n = 1 << zoom
        if not (0 <= x < n and 0 <= y < n):
            raise UserError(f'tile ({x}, {y}) does not exist at zoom {zoom}')
        data = tile if isinstance(tile, bytes) else encode_rgb(tile, self.fmt,
                                                               jpeg_quality=self.jpeg_quality)
        atomic_write_bytes(self._path(zoom, x, y), data)
        self._zooms.add(zoom)

    def close(self) -> Path:
        zooms = sorted(int(p.name) for p in self.root.iterdir()
                       if p.is_dir() and p.name.isdigit())
        if not zooms:
            raise MapStoreError(f'no tiles were written to {self.root}')
        self._remove_stale_temps(zooms)
        meta = {'name': self.name, 'format': self.fmt, 'zooms': zooms}
        if self.bounds is not None:
            meta['bounds'] = self.bounds.to_string()
        atomic_write_bytes(self.root / METADATA_FILE,
                            (json.dumps(meta, indent=2) + '\n').encode())
        return self.root

    def _remove_stale_temps(self, zooms: list[int]) -> None:
        """Delete the temporary files of writes killed before this writer started.

        A kill mid-write leaves its temporary tile (never a partial tile at the final path);
        the resumed run's close removes it. Files newer than this writer are kept: they may
        be another writer's writes in flight.
        """
        dirs = [self.root] + [x for z in zooms for x in (self.root / str(z)).iterdir()
                              if x.is_dir()]
        for d in dirs:
            with os.scandir(d) as entries:
                stale = [e.path for e in entries if _TEMP_NAME.fullmatch(e.name)
                         and e.is_file() and e.stat().st_mtime < self._started_s]
            for path in stale:
                Path(path).unlink(missing_ok=True)
