"""The `ciper` command as a user runs it: a subprocess, its output and exit status."""

import json
import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mapfixtures import DATUM, write_marker_map

ROOT = Path(__file__).resolve().parents[1]


def ciper(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, '-m', 'ciper_ros.cli', *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope='module')
def map_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('cli') / 'city.mbtiles'
    write_marker_map(path, zooms=(18, 19))
    return path


def test_help_and_version():
    r = ciper('--help')
    assert r.returncode == 0 and 'map' in r.stdout and 'demo' in r.stdout
    r = ciper('--version')
    assert r.returncode == 0 and 'ciper_ros' in r.stdout


def test_map_info(map_file):
    r = ciper('map', 'info', map_file)
    assert r.returncode == 0, r.stderr
    assert 'bounds:' in r.stdout and 'zooms:    18..19' in r.stdout
    r = ciper('map', 'info', map_file, '--json')
    info = json.loads(r.stdout)
    assert info['minzoom'] == 18 and info['maxzoom'] == 19
    assert info['tile_count'] == sum(info['tiles_per_zoom'].values()) > 0
    b = info['bounds']
    assert b['south_deg'] < DATUM[0] < b['north_deg'] and b['west_deg'] < DATUM[1] < b['east_deg']


def test_map_crop_writes_image(map_file, tmp_path):
    out = tmp_path / 'crop.png'
    r = ciper('map', 'crop', map_file, '--center', f'{DATUM[0]},{DATUM[1]}', '--side-m', '50',
              '--side-px', '100', '--out', out)
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img.shape == (100, 100, 3) and np.ptp(img) > 0


def test_map_pattern_then_info(tmp_path):
    from ciper_ros.geo import LocalTangentPlane, mercator

    out = tmp_path / 'grid.mbtiles'
    r = ciper('map', 'pattern', out, '--center', '52.52,13.405', '--size-m', '100',
              '--zooms', '18')
    assert r.returncode == 0, r.stderr
    r = ciper('map', 'info', out, '--json')
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    # the tiles the 100 m square touches at z18 (~93 m tiles here): from its corners
    corners = LocalTangentPlane(52.52, 13.405).latlon_from_xy_m(
        np.array([[-50.0, -50.0], [50.0, -50.0], [50.0, 50.0], [-50.0, 50.0]]))
    tiles = np.array([mercator.tile_xy_from_latlon(lat, lon, 18) for lat, lon in corners])
    n_x, n_y = np.ptp(tiles, axis=0) + 1
    assert info['tiles_per_zoom'] == {'18': int(n_x * n_y)} and n_x * n_y > 1
    b = info['bounds']                 # the box holds all four corners of the square
    assert b['west_deg'] <= corners[:, 1].min() and corners[:, 1].max() <= b['east_deg']
    assert b['south_deg'] <= corners[:, 0].min() and corners[:, 0].max() <= b['north_deg']


@pytest.mark.parametrize('make_bad,match', [
    (lambda d: (d / 'notes.txt').write_text('not a map') and d / 'notes.txt',
     'is not an MBTiles file'),
    (lambda d: d / 'missing.mbtiles', 'does not exist'),
    (lambda d: (d / 'empty').mkdir() or d / 'empty', 'holds no tiles'),
])
def test_bad_map_is_one_clear_line(tmp_path, make_bad, match):
    r = ciper('map', 'info', make_bad(tmp_path))
    assert r.returncode == 2
    assert match in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_crop_errors_are_one_clear_line(map_file, tmp_path):
    out = tmp_path / 'x.png'
    far = ciper('map', 'crop', map_file, '--center', '10,10', '--out', out)
    assert far.returncode == 2 and 'leaves the map bounds' in far.stderr
    zoom = ciper('map', 'crop', map_file, '--center', f'{DATUM[0]},{DATUM[1]}', '--zoom', '21',
                 '--out', out)
    assert zoom.returncode == 2 and 'available zooms: [18, 19]' in zoom.stderr
    for r in (far, zoom):
        assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad_arg = ciper('map', 'crop', map_file, '--center', 'north', '--out', out)
    assert bad_arg.returncode == 2 and 'LAT,LON' in bad_arg.stderr


def test_localize_node_console_script_needs_an_index():
    # the installed executable (what `ros2 run ciper_ros localize_node` starts)
    script = Path(sys.executable).parent / 'localize_node'
    if not script.exists():
        pytest.skip('ciper_ros is not installed in this environment (make venv installs it)')
    r = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "parameter 'index' must name a tile index directory" in r.stderr


def test_missing_tile_is_one_clear_line(tmp_path):
    from ciper_ros.geo import LatLonBounds, mercator
    from ciper_ros.maps import MBTilesWriter

    bounds = LatLonBounds(11.56, 48.13, 11.59, 48.145)
    xs, ys = mercator.tiles_covering(bounds, 17)
    hole = (xs[1], ys[1])
    path = tmp_path / 'hole.mbtiles'
    with MBTilesWriter(path, name='hole', bounds=bounds) as w:
        for x in xs:
            for y in ys:
                if (x, y) != hole:
                    w.put_tile(17, x, y, np.full((256, 256, 3), 90, np.uint8))
    lat, lon = mercator.tile_bounds(*hole, 17).center_latlon_deg
    r = ciper('map', 'crop', path, '--center', f'{lat},{lon}', '--side-m', '40', '--out',
              tmp_path / 'x.png')
    assert r.returncode == 2 and f'tile z=17 x={hole[0]} y={hole[1]} is missing' in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = ciper('map', 'crop', path, '--center', f'{lat},{lon}', '--side-m', '40',
              '--fill-missing', '--out', tmp_path / 'x.png')
    assert r.returncode == 0, r.stderr


def test_synth_commands_end_to_end(tmp_path):
    city = tmp_path / 'city'
    r = ciper('synth', 'city', '--seed', '4', '--size-m', '200', '--zooms', '19', '--out', city)
    assert r.returncode == 0, r.stderr
    assert (city / 'city.npz').is_file() and (city / 'aerial.mbtiles').is_file()
    assert 'buildings' in r.stdout
    r = ciper('synth', 'preview', '--city', city, '--out', tmp_path / 'p.png', '--n', '2')
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(tmp_path / 'p.png'))
    assert img.shape[0] > 300 and img.shape[1] > 1000
    r = ciper('synth', 'drive', '--city', city, '--out', tmp_path / 'bag', '--duration-s', '3',
              '--width', '96', '--height', '64', '--storage', 'sqlite3', '--gnss-profile', 'urban',
              '--gnss-rate-hz', '2', '--gnss-outage', '1', '1.5')
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / 'bag').glob('*.db3')) and 'GNSS urban' in r.stdout
    gnss = json.loads((tmp_path / 'bag' / 'ciper_drive.json').read_text())['drive']['gnss']
    assert gnss['name'] == 'urban' and gnss['rate_hz'] == 2.0
    assert gnss['scheduled_outages_s'] == [[1.0, 1.5]] and gnss['multipath_rate_hz'] > 0
    r = ciper('synth', 'pairs', '--city', city, '--out', tmp_path / 'shards', '--n', '3',
              '--shard-size', '2', '--aerial-side-px', '64', '--aerial-side-m', '40')
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / 'shards' / 'manifest.json').read_text())['n_renders'] == 3
    bad = ciper('synth', 'drive', '--city', tmp_path, '--out', tmp_path / 'x')
    assert bad.returncode == 2 and 'not a synthetic city folder' in bad.stderr
