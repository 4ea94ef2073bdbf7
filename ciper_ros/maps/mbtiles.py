"""MBTiles (SQLite) map store: read-only store and atomic, resumable writer.

MBTiles addresses tiles in TMS order (``tile_row = 2**z - 1 - y``); this module converts at
the SQL boundary so that everything above it uses XYZ (y = 0 at the north).
"""

from __future__ import annotations

import os
from pathlib import Path
import sqlite3
import threading

import numpy as np

from ciper_ros.geo import mercator
from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.maps.codec import decode_rgb, encode_rgb, normalize_format, sniff_format
from ciper_ros.maps.errors import MapStoreError, NotAMapError
from ciper_ros.maps.store import MapMetadata, TileStore
from ciper_ros.util.errors import UserError

SQLITE_MAGIC = b'SQLite format 3\x00'


def _tile_extent_bounds(conn_query, zoom: int) -> LatLonBounds:
    """Bounds of all tiles at ``zoom``, from an MBTiles ``tiles`` table (TMS rows)."""
    c0, c1, r0, r1 = conn_query(
        'SELECT MIN(tile_column), MAX(tile_column), MIN(tile_row), MAX(tile_row) '
        'FROM tiles WHERE zoom_level=?', (zoom,))[0]
    return mercator.tile_range_bounds(zoom, (c0, c1), (mercator.xyz_y_from_tms_row(r1, zoom),
                                                       mercator.xyz_y_from_tms_row(r0, zoom)))


class MBTilesStore(TileStore):
    """Read-only MBTiles store. One SQLite connection per thread (and per process after fork)."""

    def __init__(self, path: str | os.PathLike, *, cache_mb: float = 64.0) -> None:
        super().__init__(cache_mb=cache_mb)
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f'map file {self.path} does not exist')
        if not self.path.is_file():
            raise NotAMapError(f'{self.path} is not a file; an MBTiles map is one SQLite file')
        with open(self.path, 'rb') as f:
            head = f.read(16)
        if head != SQLITE_MAGIC:
            raise NotAMapError(f'{self.path} is not an MBTiles file (not an SQLite database)')
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._query('SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 0')

    @property
    def source(self) -> str:
        return str(self.path)

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked (e.g. a DataLoader worker): never share sockets
            # the parent's connections stay referenced, never closed here: SQLite must not
            # close a handle inherited across fork (it may release the parent's locks)
            self._inherited = getattr(self, '_inherited', []) + self._connections
            self._local = threading.local()
            self._connections = []
            self._lock = threading.Lock()
            self._pid = os.getpid()
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            uri = f'{self.path.resolve().as_uri()}?mode=ro'
            try:
                conn = sqlite3.connect(uri, uri=True, check_same_thread=True)
            except sqlite3.Error as e:
                raise NotAMapError(f'cannot open {self.path} as SQLite: {e}') from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if 'no such table' in msg or 'no such column' in msg or 'not a database' in msg:
                raise NotAMapError(f'{self.path} is not an MBTiles file ({msg})') from None
            raise MapStoreError(f'reading {self.path} failed: {msg}') from None

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # closed from another thread's object
                    pass
            self._connections.clear()
        self._local = threading.local()

    def _read_tile_bytes(self, zoom: int, x: int, y: int) -> bytes | None:
        rows = self._query(
            'SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?',
            (zoom, x, mercator.tms_row_from_xyz_y(y, zoom)))
        return bytes(rows[0][0]) if rows else None

    def tile_count(self, zoom: int | None = None) -> int:
        if zoom is None:
            return int(self._query('SELECT COUNT(*) FROM tiles')[0][0])
        return int(self._query('SELECT COUNT(*) FROM tiles WHERE zoom_level=?', (zoom,))[0][0])

    def raw_metadata(self) -> dict[str, str]:
        try:
            rows = self._query('SELECT name, value FROM metadata')
        except NotAMapError:
            return {}
        return {str(k): str(v) for k, v in rows}

    def _load_metadata(self) -> MapMetadata:
        raw = self.raw_metadata()
        zooms = tuple(int(r[0]) for r in
                      self._query('SELECT DISTINCT zoom_level FROM tiles ORDER BY zoom_level'))
        if not zooms:
            raise NotAMapError(f'{self.path} is an MBTiles file without tiles')
        sample = self._query('SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles '
                             'LIMIT 1')[0]
        data = bytes(sample[3])
        rgb = decode_rgb(data, what=f'tile z={sample[0]} x={sample[1]} tms_row={sample[2]} of '
                                    f'{self.path}')
        if rgb.shape[0] != rgb.shape[1]:
            raise NotAMapError(f'{self.path} has non-square tiles ({rgb.shape[1]}x{rgb.shape[0]})')
        fmt = raw.get('format') or sniff_format(data) or 'png'
        try:
            fmt = normalize_format(fmt)
        except ValueError as e:
            raise NotAMapError(f'{self.path}: {e}') from None
        if 'bounds' in raw:
            try:
                bounds = LatLonBounds.from_string(raw['bounds'])
            except ValueError as e:
                raise NotAMapError(f'{self.path} has invalid bounds metadata: {e}') from None
        else:  # derive from the tile extent at the finest zoom
            bounds = _tile_extent_bounds(self._query, zooms[-1])
        extra = {k: v for k, v in raw.items()
                 if k not in ('name', 'format', 'bounds', 'minzoom', 'maxzoom')}
        return MapMetadata(name=raw.get('name', self.path.stem), format=fmt, bounds=bounds,
                           zooms=zooms, tile_px=int(rgb.shape[0]), extra=extra)


class MBTilesWriter:
    """Writes an MBTiles file atomically and resumably.

    Tiles go to ``<path>.partial`` in batched transactions; ``close()`` writes the metadata
    and renames the file into place. A killed run leaves the partial file: a new writer with
    ``resume=True`` continues it (``has_tile`` tells what is done).
    """

    def __init__(self, path: str | os.PathLike, *, name: str, fmt: str = 'png',
                 bounds: LatLonBounds | None = None, jpeg_quality: int = 90,
                 resume: bool = False, overwrite: bool = False,
                 metadata: dict[str, str] | None = None, batch_tiles: int = 256) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + '.partial')
        self.fmt = normalize_format(fmt)
        self.name = name
        self.bounds = bounds
        self.jpeg_quality = jpeg_quality
        self.extra_metadata = dict(metadata or {})
        self.batch_tiles = batch_tiles
        if self.path.exists() and not overwrite:
            raise FileExistsError(f'{self.path} exists; pass overwrite=True to replace it')
        if self.partial.exists() and not resume:
            self.partial.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.partial)
            self._conn.executescript(
                'CREATE TABLE IF NOT EXISTS metadata (name TEXT, value TEXT);'
                'CREATE UNIQUE INDEX IF NOT EXISTS metadata_name ON metadata (name);'
                'CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER, tile_column INTEGER,'
                ' tile_row INTEGER, tile_data BLOB);'
                'CREATE UNIQUE INDEX IF NOT EXISTS tile_index ON tiles'
                ' (zoom_level, tile_column, tile_row);')
        except sqlite3.DatabaseError as e:
            raise NotAMapError(f'cannot resume {self.partial}: {e}; delete it and start '
                               f'again') from None
        self._pending = 0
        self._closed = False

    def __enter__(self) -> MBTilesWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def has_tile(self, zoom: int, x: int, y: int) -> bool:
        row = self._conn.execute(
            'SELECT 1 FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?',
            (zoom, x, mercator.tms_row_from_xyz_y(y, zoom))).fetchone()
        return row is not None

    def put_tile(self, zoom: int, x: int, y: int, tile: np.ndarray | bytes) -> None:
        """Store XYZ tile (x, y) at ``zoom``: an RGB array (encoded here) or encoded bytes."""
        n = 1 << zoom
        if not (0 <= x < n and 0 <= y < n):
            raise UserError(f'tile ({x}, {y}) does not exist at zoom {zoom}')
        data = tile if isinstance(tile, bytes) else encode_rgb(tile, self.fmt,
                                                               jpeg_quality=self.jpeg_quality)
        self._conn.execute(
            'INSERT OR REPLACE INTO tiles (zoom_level, tile_column, tile_row, tile_data) '
            'VALUES (?, ?, ?, ?)', (zoom, x, mercator.tms_row_from_xyz_y(y, zoom),
                                    sqlite3.Binary(data)))
        self._pending += 1
        if self._pending >= self.batch_tiles:
            self.flush()

    def flush(self) -> None:
        self._conn.commit()
        self._pending = 0

    def abort(self) -> None:
        """Commit what is written and keep the partial file for a resume."""
        if not self._closed:
            self.flush()
            self._conn.close()
            self._closed = True

    def close(self) -> Path:
        """Write metadata, then atomically move the finished file into place."""
        if self._closed:
            return self.path
        self.flush()
        zooms = [r[0] for r in self._conn.execute(
            'SELECT DISTINCT zoom_level FROM tiles ORDER BY zoom_level')]
        if not zooms:
            self.abort()
            raise MapStoreError(f'no tiles were written to {self.partial}')
        bounds = self.bounds
        if bounds is None:
            bounds = _tile_extent_bounds(
                lambda sql, params: self._conn.execute(sql, params).fetchall(), zooms[-1])
        lat_c, lon_c = bounds.center_latlon_deg
        meta = {
            'name': self.name, 'format': self.fmt, 'type': 'baselayer', 'version': '1.0',
            'bounds': bounds.to_string(), 'center': f'{lon_c},{lat_c},{zooms[-1]}',
            'minzoom': str(zooms[0]), 'maxzoom': str(zooms[-1]), **self.extra_metadata}
        self._conn.executemany('INSERT OR REPLACE INTO metadata (name, value) VALUES (?, ?)',
                               list(meta.items()))
        self._conn.commit()
        self._conn.close()
        self._closed = True
        with open(self.partial, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(self.partial, self.path)
        return self.path
