"""MBTiles read/write: TMS flip, metadata, atomic and resumable writes, clear errors."""

import sqlite3

import numpy as np
import pytest

from ciper_ros.geo import LatLonBounds, mercator
from ciper_ros.maps import (
    CorruptTileError,
    MapStoreError,
    MBTilesStore,
    MBTilesWriter,
    NotAMapError,
    open_store,
    OutOfBoundsError,
    TileNotFoundError,
    ZoomNotAvailableError,
)
from ciper_ros.maps.cache import LRUTileCache
from ciper_ros.maps.codec import encode_rgb


def solid(rgb, px=256):
    tile = np.zeros((px, px, 3), np.uint8)
    tile[...] = rgb
    return tile


def test_tms_flip_on_disk(tmp_path):
    path = tmp_path / 'tms.mbtiles'
    with MBTilesWriter(path, name='tms') as w:
        w.put_tile(3, 2, 1, solid((255, 0, 0)))
    rows = sqlite3.connect(path).execute(
        'SELECT zoom_level, tile_column, tile_row FROM tiles').fetchall()
    assert rows == [(3, 2, 6)]  # tile_row = 2**3 - 1 - 1


def test_tms_flip_reading_a_file_written_by_hand(tmp_path):
    # built with raw SQL as another tool would write it: the northern tile has the high row
    path = tmp_path / 'hand.mbtiles'
    conn = sqlite3.connect(path)
    conn.executescript('CREATE TABLE metadata (name TEXT, value TEXT);'
                       'CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, '
                       'tile_row INTEGER, tile_data BLOB);')
    north, south = encode_rgb(solid((0, 0, 255)), 'png'), encode_rgb(solid((0, 255, 0)), 'png')
    conn.execute('INSERT INTO tiles VALUES (1, 0, 1, ?)', (north,))  # TMS row 1 = north
    conn.execute('INSERT INTO tiles VALUES (1, 0, 0, ?)', (south,))
    conn.execute("INSERT INTO metadata VALUES ('format', 'png')")
    conn.commit()
    conn.close()
    with MBTilesStore(path) as store:
        assert tuple(store.tile(1, 0, 0)[0, 0]) == (0, 0, 255)  # XYZ y=0 is the north
        assert tuple(store.tile(1, 0, 1)[0, 0]) == (0, 255, 0)
        assert store.metadata.zooms == (1,)
        # bounds derived from the tiles when the metadata has none
        assert store.metadata.bounds.west_deg == pytest.approx(-180.0)
        assert store.metadata.bounds.east_deg == pytest.approx(0.0)


def test_bounds_from_the_tiles_flip_tms_rows(tmp_path):
    # four tiles over Munich at zoom 10 (XYZ x 544-545, y 355-356), no bounds metadata: the
    # derived bounds are these tiles' (47.75 to 48.22 N), not their mirror (south of -47)
    z, xs, ys = 10, (544, 545), (355, 356)
    want = mercator.tile_range_bounds(z, xs, ys)
    assert 47.7 < want.south_deg < want.north_deg < 48.3
    tile = encode_rgb(solid((9, 9, 9)), 'png')
    path = tmp_path / 'hand.mbtiles'
    conn = sqlite3.connect(path)
    conn.executescript('CREATE TABLE metadata (name TEXT, value TEXT);'
                       'CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, '
                       'tile_row INTEGER, tile_data BLOB);')
    for x in xs:
        for y in ys:
            conn.execute('INSERT INTO tiles VALUES (?, ?, ?, ?)', (z, x, 2 ** z - 1 - y, tile))
    conn.execute('INSERT INTO tiles VALUES (8, 136, 166, ?)', (tile,))   # a coarser zoom
    conn.execute("INSERT INTO metadata VALUES ('format', 'png')")
    conn.commit()
    conn.close()
    with MBTilesStore(path) as store:
        got = store.metadata.bounds
        assert (got.west_deg, got.south_deg, got.east_deg, got.north_deg) == pytest.approx(
            (want.west_deg, want.south_deg, want.east_deg, want.north_deg), abs=1e-9)
    # the writer derives the bounds it records the same way
    written = tmp_path / 'written.mbtiles'
    with MBTilesWriter(written, name='munich') as w:
        for x in xs:
            for y in ys:
                w.put_tile(z, x, y, solid((9, 9, 9)))
    raw = dict(sqlite3.connect(written).execute('SELECT name, value FROM metadata'))
    got = LatLonBounds.from_string(raw['bounds'])
    assert (got.south_deg, got.north_deg) == pytest.approx((want.south_deg, want.north_deg),
                                                           abs=1e-6)
    with MBTilesStore(written) as store:
        assert store.metadata.bounds.contains(*want.center_latlon_deg)


def test_metadata_written_and_read(tmp_path):
    path = tmp_path / 'meta.mbtiles'
    bounds = LatLonBounds(11.5, 48.1, 11.6, 48.2)
    with MBTilesWriter(path, name='city', fmt='jpg', bounds=bounds,
                       metadata={'attribution': 'synthetic'}) as w:
        for z in (15, 16):
            xs, ys = mercator.tiles_covering(bounds, z)
            for x in xs:
                for y in ys:
                    w.put_tile(z, x, y, solid((10, 20, 30)))
    raw = dict(sqlite3.connect(path).execute('SELECT name, value FROM metadata').fetchall())
    assert raw['format'] == 'jpg' and raw['minzoom'] == '15' and raw['maxzoom'] == '16'
    assert LatLonBounds.from_string(raw['bounds']) == bounds
    with open_store(path) as store:
        meta = store.metadata
        assert (meta.name, meta.format, meta.zooms, meta.tile_px) == ('city', 'jpg', (15, 16),
                                                                       256)
        assert meta.bounds == bounds
        assert meta.extra['attribution'] == 'synthetic'
        assert store.tile_count() == store.tile_count(15) + store.tile_count(16)


def test_write_is_atomic_and_resumable(tmp_path):
    path = tmp_path / 'resume.mbtiles'
    partial = tmp_path / 'resume.mbtiles.partial'
    with pytest.raises(RuntimeError):
        with MBTilesWriter(path, name='r', batch_tiles=2) as w:
            for x in range(5):
                w.put_tile(4, x, 3, solid((x, 0, 0)))
            raise RuntimeError('killed')
    assert not path.exists() and partial.exists()  # nothing half-written at the final path
    with MBTilesWriter(path, name='r', resume=True) as w:
        assert all(w.has_tile(4, x, 3) for x in range(5))
        assert not w.has_tile(4, 5, 3)
        w.put_tile(4, 5, 3, solid((5, 0, 0)))
    assert path.exists() and not partial.exists()
    with MBTilesStore(path) as store:
        assert store.tile_count() == 6
        assert store.tile(4, 4, 3)[0, 0, 0] == 4
    with pytest.raises(FileExistsError):
        MBTilesWriter(path, name='r')


def test_not_an_mbtiles_file(tmp_path):
    text = tmp_path / 'notes.mbtiles'
    text.write_text('hello, not a database\n' * 10)
    with pytest.raises(NotAMapError, match='not an MBTiles file'):
        MBTilesStore(text)
    other_db = tmp_path / 'other.sqlite'
    sqlite3.connect(other_db).execute('CREATE TABLE foo (a)').connection.commit()
    with pytest.raises(NotAMapError, match='no such table: tiles'):
        MBTilesStore(other_db)
    empty = tmp_path / 'empty.mbtiles'
    empty.write_bytes(b'')
    with pytest.raises(NotAMapError):
        MBTilesStore(empty)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        open_store(tmp_path / 'missing.mbtiles')


@pytest.fixture
def small_map(tmp_path):
    """Build a map of z17 tiles around Munich with one tile missing in the middle."""
    path = tmp_path / 'holes.mbtiles'
    bounds = LatLonBounds(11.56, 48.13, 11.59, 48.145)
    xs, ys = mercator.tiles_covering(bounds, 17)
    hole = (xs[len(xs) // 2], ys[len(ys) // 2])
    with MBTilesWriter(path, name='holes', bounds=bounds) as w:
        for x in xs:
            for y in ys:
                if (x, y) != hole:
                    w.put_tile(17, x, y, solid((50, 100, 150)))
    return path, bounds, hole


def test_missing_tile_error_names_the_tile(small_map):
    path, bounds, hole = small_map
    center = mercator.tile_bounds(*hole, 17).center_latlon_deg
    with MBTilesStore(path) as store:
        with pytest.raises(TileNotFoundError, match=f'z=17 x={hole[0]} y={hole[1]}'):
            store.crop(center, 50.0, 64)
        filled = store.crop(center, 50.0, 64, missing='fill', fill_rgb=(1, 2, 3))
        assert tuple(filled.image_rgb[32, 32]) == (1, 2, 3)
        with pytest.raises(TileNotFoundError):
            store.tile(17, *hole)


def test_crop_outside_bounds_names_the_bounds(small_map):
    path, bounds, _ = small_map
    with MBTilesStore(path) as store:
        with pytest.raises(OutOfBoundsError) as info:
            store.crop((48.1449, 11.575), 100.0, 64)  # straddles the northern edge
        msg = str(info.value)
        assert 'map bounds' in msg and f'{bounds.north_deg:.6f}' in msg
        with pytest.raises(OutOfBoundsError):
            store.crop((10.0, 10.0), 10.0, 64)


def test_zoom_not_in_file(small_map):
    path, _, _ = small_map
    with MBTilesStore(path) as store:
        with pytest.raises(ZoomNotAvailableError, match=r'zoom 19 .* available zooms: \[17\]'):
            store.crop((48.1375, 11.575), 20.0, 64, zoom=19)
        with pytest.raises(ZoomNotAvailableError):
            store.tile(12, 0, 0)


def test_corrupt_tile(tmp_path):
    path = tmp_path / 'corrupt.mbtiles'
    with MBTilesWriter(path, name='c') as w:
        w.put_tile(2, 1, 1, solid((1, 2, 3)))
        w.put_tile(2, 2, 1, b'\x89PNG\r\n\x1a\nthis is not really a png')
    with MBTilesStore(path) as store:
        with pytest.raises(CorruptTileError, match='z=2 x=2 y=1'):
            store.tile(2, 2, 1)


@pytest.mark.parametrize('kwargs,match', [
    ({'side_m': -1.0, 'side_px': 64}, 'side_m'),
    ({'side_m': float('nan'), 'side_px': 64}, 'side_m'),
    ({'side_m': 10.0, 'side_px': 1}, 'side_px'),
    ({'side_m': 10.0, 'side_px': 64, 'missing': 'ignore'}, 'missing'),
])
def test_crop_argument_validation(small_map, kwargs, match):
    path, _, _ = small_map
    with MBTilesStore(path) as store:
        with pytest.raises(ValueError, match=match):
            store.crop((48.1375, 11.575), **kwargs)


def test_lru_cache_bounds_bytes_and_counts():
    cache = LRUTileCache(capacity_mb=3 * 196608 / 2 ** 20)  # room for three 256 px tiles
    for i in range(5):
        cache.get_or_load(i, lambda i=i: solid((i, 0, 0)))
    assert len(cache) == 3 and cache.size_bytes == 3 * 196608
    calls = []
    cache.get_or_load(4, lambda: calls.append(1) or solid((9, 9, 9)))
    assert not calls and cache.hits == 1 and cache.misses == 5
    cache.get_or_load(2, lambda: solid((2, 0, 0)))  # touch 2: now 3 is the oldest
    cache.get_or_load(5, lambda: solid((5, 0, 0)))
    cache.get_or_load(3, lambda: calls.append(3) or solid((3, 0, 0)))
    assert calls == [3]
    value = cache.get_or_load(5, lambda: solid((0, 0, 0)))
    assert not value.flags.writeable  # shared arrays cannot be mutated by one caller
    disabled = LRUTileCache(capacity_mb=0)
    disabled.get_or_load('a', lambda: solid((0, 0, 0)))
    assert len(disabled) == 0


def test_truncated_database_is_a_clear_error(tmp_path):
    good = tmp_path / 'good.mbtiles'
    with MBTilesWriter(good, name='g', batch_tiles=1) as w:
        for x in range(16):
            w.put_tile(4, x, 5, np.random.default_rng(x).integers(0, 255, (256, 256, 3),
                                                                     dtype=np.uint8))
    data = good.read_bytes()
    bad = tmp_path / 'truncated.mbtiles'
    bad.write_bytes(data[:len(data) // 3])  # SQLite header intact, pages missing
    with pytest.raises(MapStoreError, match=f'reading {bad} failed: .*malformed'):
        with MBTilesStore(bad) as store:
            for x in range(16):
                store.tile(4, x, 5)
