"""What the README says about the map stores, checked.

WebP tiles read and written, XYZ tiles written atomically (a write that fails or is killed
midway leaves no partial tile), ``write_pyramid`` skipping the tiles a killed run finished,
and one SQLite connection per thread and per process after a fork.
"""

from contextlib import closing
import errno
import json
import os
from pathlib import Path
import re
import signal
import sqlite3
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from ciper_ros.geo import LocalTangentPlane, mercator
from ciper_ros.maps import MBTilesStore, MBTilesWriter, open_store, write_pyramid, XYZWriter
from ciper_ros.maps.codec import decode_rgb, encode_rgb

from mapfixtures import area_bounds, DATUM, write_marker_map

ROOT = Path(__file__).resolve().parents[1]


def noise_tile(seed: int, px: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (px, px, 3), dtype=np.uint8)


def lossless_webp(rgb: np.ndarray) -> bytes:
    # OpenCV writes lossless WebP for quality > 100: decoding gives the pixels back exactly
    ok, buf = cv2.imencode('.webp', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok
    return buf.tobytes()


def is_webp(data: bytes) -> bool:
    return data[:4] == b'RIFF' and data[8:12] == b'WEBP'


# ------------------------------------------------------------------------------ WebP tiles

def test_mbtiles_writes_and_reads_webp_tiles(tmp_path):
    path = tmp_path / 'webp.mbtiles'
    noise = noise_tile(1)
    raw = lossless_webp(noise)
    colour = (200, 40, 90)
    with MBTilesWriter(path, name='webp', fmt='webp') as w:
        w.put_tile(5, 3, 7, raw)                                  # encoded bytes as given
        w.put_tile(5, 4, 7, np.full((256, 256, 3), colour, np.uint8))   # encoded here
    with closing(sqlite3.connect(path)) as conn:
        rows = {x: bytes(d) for x, d in conn.execute('SELECT tile_column, tile_data FROM tiles')}
    assert rows[3] == raw
    assert is_webp(rows[4])                 # the writer encoded WebP, not its default PNG
    with open_store(path) as store:
        assert isinstance(store, MBTilesStore)
        assert store.metadata.format == 'webp'
        assert store.tile_bytes(5, 3, 7) == raw
        assert np.array_equal(store.tile(5, 3, 7), noise)
        assert np.abs(store.tile(5, 4, 7).astype(int) - colour).max() <= 3


def test_webp_tiles_without_format_metadata_are_recognised(tmp_path):
    # as another tool might write it: no 'format' row, so the format comes from the bytes
    path = tmp_path / 'bare.mbtiles'
    noise = noise_tile(2)
    conn = sqlite3.connect(path)
    conn.executescript('CREATE TABLE metadata (name TEXT, value TEXT);'
                       'CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, '
                       'tile_row INTEGER, tile_data BLOB);')
    conn.execute('INSERT INTO tiles VALUES (2, 1, 1, ?)', (lossless_webp(noise),))
    conn.commit()
    conn.close()
    with open_store(path) as store:
        assert store.metadata.format == 'webp'
        assert np.array_equal(store.tile(2, 1, 2), noise)     # TMS row 1 = XYZ y 2 at z 2


@pytest.mark.parametrize('xyz', [False, True], ids=['mbtiles', 'xyz'])
def test_webp_map_crops_like_the_png_map(tmp_path, xyz):
    suffix = '' if xyz else '.mbtiles'
    plane, _ = write_marker_map(tmp_path / f'png{suffix}', fmt='png', xyz=xyz, zooms=(19,),
                                size_m=120.0)
    write_marker_map(tmp_path / f'webp{suffix}', fmt='webp', xyz=xyz, zooms=(19,), size_m=120.0)
    if xyz:
        names = {p.suffix for p in (tmp_path / 'webp').rglob('*') if p.is_file()}
        assert names == {'.webp', '.json'}
    centre = tuple(plane.latlon_from_xy_m(np.array([[5.0, -10.0]]))[0])
    with open_store(tmp_path / f'png{suffix}') as s_png, \
            open_store(tmp_path / f'webp{suffix}') as s_webp:
        assert s_webp.metadata.format == 'webp'
        assert is_webp(s_webp.tile_bytes(19, *next(iter(tile_keys(s_webp, 19)))))
        a = s_png.crop(centre, side_m=64.0, side_px=128).image_rgb.astype(float)
        b = s_webp.crop(centre, side_m=64.0, side_px=128).image_rgb.astype(float)
    assert a.std() > 20.0                            # a crop with content, not a blank one
    assert np.abs(a - b).mean() < 4.0                # lossy WebP at quality 90, same picture


def tile_keys(store, zoom):
    if isinstance(store, MBTilesStore):
        rows = store._query('SELECT tile_column, tile_row FROM tiles WHERE zoom_level=?',
                            (zoom,))
        return [(x, mercator.xyz_y_from_tms_row(r, zoom)) for x, r in rows]
    return store._tiles(zoom)


# ------------------------------------------------------------------------------ atomic XYZ

# A child process writes tiles with its file size limited (RLIMIT_FSIZE): the kernel lets the
# first LIMIT bytes of a file through and then fails the write (EFBIG when SIGXFSZ is ignored)
# or kills the process (SIGXFSZ's default action). A writer writing straight to the final
# path would leave a LIMIT-byte tile there.
LIMIT = 4096
CHILD = r"""
import resource, signal, sys
import numpy as np
from ciper_ros.maps import XYZWriter
root, mode, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
def noise(seed):
    return np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
w = XYZWriter(root, name='t')
w.put_tile(3, 1, 2, noise(10))                   # whole: written before the limit
# CPython ignores SIGXFSZ at start-up; 'kill' restores the kernel's default (terminate)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN if mode == 'raise' else signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
for key, seed in (((3, 1, 3), 11), ((3, 1, 2), 12)):   # a new tile, then over the old one
    try:
        w.put_tile(*key, noise(seed))
    except OSError as e:
        print('failed', *key, e.errno, flush=True)
"""


def run_child(root: Path, mode: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE='1')
    return subprocess.run([sys.executable, '-c', CHILD, str(root), mode, str(LIMIT)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob('*') if p.is_file()}


def test_xyz_tile_write_failing_midway_leaves_the_final_path_as_it_was(tmp_path):
    root = tmp_path / 'xyz'
    res = run_child(root, 'raise')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split('\n')[:2] == [f'failed 3 1 3 {errno.EFBIG}',
                                          f'failed 3 1 2 {errno.EFBIG}']
    assert len(encode_rgb(noise_tile(10), 'png')) > LIMIT    # the limit cut both writes
    assert files_under(root) == {'3/1/2.png': (root / '3/1/2.png').stat().st_size}
    assert not (root / '3/1/3.png').exists()                      # no partial new tile
    assert np.array_equal(decode_rgb((root / '3/1/2.png').read_bytes()), noise_tile(10))


def test_xyz_tile_write_killed_midway_is_invisible_and_cleaned_on_resume(tmp_path):
    root = tmp_path / 'xyz'
    res = run_child(root, 'kill')
    assert res.returncode == -signal.SIGXFSZ, res.stderr
    files = files_under(root)
    assert '3/1/3.png' not in files                               # nothing at the final path
    stray = [k for k in files if k != '3/1/2.png']
    # the kill really came midway: the tile's temp file holds exactly the first LIMIT bytes
    assert len(stray) == 1 and files[stray[0]] == LIMIT
    assert re.fullmatch(r'3/1/\.3\.png\..+\.tmp', stray[0])
    with open_store(root) as store:                               # readers do not see it
        assert store.tile_count() == 1
        assert not store.has_tile(3, 1, 3)
    with XYZWriter(root, name='t') as w:                          # resume and finish
        assert w.has_tile(3, 1, 2) and not w.has_tile(3, 1, 3)
        w.put_tile(3, 1, 3, noise_tile(11))
    assert sorted(files_under(root)) == ['3/1/2.png', '3/1/3.png', 'metadata.json']
    with open_store(root) as store:
        assert np.array_equal(store.tile(3, 1, 3), noise_tile(11))


def test_xyz_writer_leaves_only_tiles_and_metadata(tmp_path):
    root = tmp_path / 'xyz'
    write_marker_map(root, xyz=True, zooms=(18, 19), size_m=100.0)
    names = sorted(files_under(root))
    assert names[-1] == 'metadata.json'
    assert names[:-1] and all(re.fullmatch(r'1[89]/\d+/\d+\.png', n) for n in names[:-1])
    assert json.loads((root / 'metadata.json').read_text())['zooms'] == [18, 19]


# ------------------------------------------------------------------------------ resume

class ColourSampler:
    """Paints every tile one colour and counts its calls; raises after ``fail_after`` calls."""

    def __init__(self, rgb: tuple[int, int, int], *, fail_after: int | None = None) -> None:
        self.rgb = rgb
        self.fail_after = fail_after
        self.calls = 0

    def __call__(self, east_m, north_m, m_per_px):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError('killed')
        self.calls += 1
        return np.full(east_m.shape + (3,), self.rgb, np.uint8)


def pyramid_keys(bounds, zooms):
    keys = []
    for z in zooms:
        xs, ys = mercator.tiles_covering(bounds, z)
        keys.extend((z, x, y) for y in ys for x in xs)
    return keys


@pytest.mark.parametrize('kind', ['mbtiles', 'xyz'])
def test_write_pyramid_resume_renders_only_the_missing_tiles(tmp_path, kind):
    plane = LocalTangentPlane(*DATUM)
    bounds = area_bounds(plane, 240.0)
    zooms = (17, 18)
    keys = pyramid_keys(bounds, zooms)
    assert len(keys) >= 6
    path = tmp_path / ('map.mbtiles' if kind == 'mbtiles' else 'map')

    def writer(resume):
        if kind == 'mbtiles':
            return MBTilesWriter(path, name='r', bounds=bounds, resume=resume, batch_tiles=1)
        return XYZWriter(path, name='r', bounds=bounds)

    red, blue = (255, 0, 0), (0, 0, 255)
    first = ColourSampler(red, fail_after=3)
    with pytest.raises(RuntimeError, match='killed'):
        with writer(False) as w:
            write_pyramid(w, plane=plane, sampler=first, bounds=bounds, zooms=zooms,
                          progress=False)
    assert first.calls == 3
    second = ColourSampler(blue)
    with writer(True) as w:
        written = write_pyramid(w, plane=plane, sampler=second, bounds=bounds, zooms=zooms,
                                progress=False)
    assert written == second.calls == len(keys) - 3
    with open_store(path) as store:
        assert store.tile_count() == len(keys)
        colours = [tuple(store.tile(*k)[0, 0]) for k in keys]
    # the three tiles of the killed run were kept, not rendered again
    assert colours == [red] * 3 + [blue] * (len(keys) - 3)

    if kind == 'xyz':   # a third run over the finished folder renders and rewrites nothing
        stats = {k: os.stat(path / f'{k[0]}/{k[1]}/{k[2]}.png') for k in keys}
        third = ColourSampler((0, 255, 0))
        with writer(True) as w:
            assert write_pyramid(w, plane=plane, sampler=third, bounds=bounds, zooms=zooms,
                                 progress=False) == 0
        assert third.calls == 0
        for k, st in stats.items():
            now = os.stat(path / f'{k[0]}/{k[1]}/{k[2]}.png')
            assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


# ------------------------------------------------------------------------------ connections

def numbered_map(path: Path, n: int = 16) -> dict[tuple[int, int, int], bytes]:
    """Write an MBTiles map of ``n`` PNG tiles at zoom 4, each a different colour."""
    tiles = {}
    with MBTilesWriter(path, name='n') as w:
        for i in range(n):
            key = (4, i % 4 + 3, i // 4 + 5)
            tiles[key] = encode_rgb(np.full((64, 64, 3), (i * 15, 255 - i * 15, 7), np.uint8),
                                    'png')
            w.put_tile(*key, tiles[key])
    return tiles


def test_threads_read_one_store_through_their_own_connections(tmp_path):
    tiles = numbered_map(tmp_path / 'n.mbtiles')
    keys = list(tiles)
    n_threads = 6
    barrier = threading.Barrier(n_threads)
    conns, errors = [None] * n_threads, []
    with MBTilesStore(tmp_path / 'n.mbtiles') as store:
        main_conn = store._connection()

        def read(i):
            try:
                barrier.wait(timeout=30)     # all threads alive and reading at the same time
                conns[i] = store._connection()
                order = np.random.default_rng(i).permutation(len(keys))
                for _ in range(5):
                    for j in order:
                        assert store.tile_bytes(*keys[j]) == tiles[keys[j]]
                        assert np.array_equal(store.tile(*keys[j]),
                                              decode_rgb(tiles[keys[j]]))
                barrier.wait(timeout=30)     # keep every connection alive until all are made
            except Exception as e:   # reported in the main thread
                errors.append(repr(e))
                barrier.abort()

        threads = [threading.Thread(target=read, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert len({id(c) for c in conns + [main_conn]}) == n_threads + 1
        assert len(store._connections) == n_threads + 1


def test_a_forked_child_opens_its_own_connection_and_reads_correctly(tmp_path):
    tiles = numbered_map(tmp_path / 'n.mbtiles')
    keys = list(tiles)
    with MBTilesStore(tmp_path / 'n.mbtiles') as store:
        assert store.tile_bytes(*keys[0]) == tiles[keys[0]]      # used in the parent
        store.tile(*keys[0])
        parent_conn = store._connection()   # kept referenced: the child cannot reuse its id
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                        # the child: report in JSON, always exit
            signal.alarm(60)                # a hung child dies, and the parent's read ends
            try:
                os.close(r)
                conn = store._connection()
                ok = [store.tile_bytes(*k) == tiles[k] for k in keys]
                ok += [np.array_equal(store.tile(*k), decode_rgb(tiles[k])) for k in keys[1:]]
                out = {'own_connection': conn is not parent_conn,
                       'same_again': store._connection() is conn, 'ok': all(ok),
                       'count': store.tile_count()}
            except BaseException as e:   # reported to the parent
                out = {'error': repr(e)}
            os.write(w, json.dumps(out).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            report = json.loads(f.read())
        assert os.waitpid(pid, 0)[1] == 0
        assert report == {'own_connection': True, 'same_again': True, 'ok': True,
                          'count': len(keys)}
        # the parent keeps its connection and still reads after the child is gone
        assert store._connection() is parent_conn
        assert all(store.tile_bytes(*k) == tiles[k] for k in keys)


def test_a_child_forked_while_the_cache_lock_is_held_does_not_deadlock():
    """A multi-threaded parent may fork while a reader thread holds the cache lock."""
    import os
    import signal

    from ciper_ros.maps.cache import LRUTileCache

    cache = LRUTileCache(capacity_mb=1.0)
    with cache._lock:                     # what another thread holds at the fork
        pid = os.fork()
        if pid == 0:                      # child: the first use must not wait forever
            signal.alarm(20)
            try:
                v = cache.get_or_load('k', lambda: np.ones(3, np.uint8))
                os._exit(0 if v.sum() == 3 else 1)
            except BaseException:
                os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
