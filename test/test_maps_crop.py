"""Crops land where geodesy says: markers at known lat/lon found within 1 px."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ciper_ros.maps import MBTilesStore, XYZFolderStore
from ciper_ros.maps.pattern import find_marker_centroids

from mapfixtures import write_marker_map


@pytest.fixture(scope='module')
def marker_map(tmp_path_factory):
    path = tmp_path_factory.mktemp('maps') / 'markers.mbtiles'
    plane, points = write_marker_map(path)
    return path, plane, points


def marker_errors_px(crop, plane, points, radius_m=1.2):
    expected = crop.uv_px_from_latlon(plane.latlon_from_xy_m(points))
    margin = radius_m / crop.m_per_px + 2
    keep = np.all((expected > margin) & (expected < crop.side_px - margin), axis=1)
    expected = expected[keep]
    found = find_marker_centroids(crop.image_rgb)
    assert len(expected) >= 3, 'the crop should contain several markers'
    assert len(found) >= 1
    d = np.linalg.norm(expected[:, None] - found[None], axis=-1)
    # every marker geodesy puts in the crop is found near there (a missing one shows up as
    # a large error), and nothing is found where there is no marker
    near_expected = np.linalg.norm(
        found[:, None] - crop.uv_px_from_latlon(plane.latlon_from_xy_m(points))[None],
        axis=-1).min(axis=1)
    assert near_expected.max() <= 1.0
    return d.min(axis=1)


CASES = [  # centre offset from the datum (east, north m), side m, side px, zoom
    ((0.0, 0.0), 64.0, 256, None),
    ((31.7, -22.4), 50.0, 128, None),
    ((-40.0, 35.0), 100.0, 512, None),
    ((12.5, 50.1), 120.0, 200, 19),
    ((-55.0, -50.0), 80.0, 160, 18),   # upsampled from the coarser zoom
    ((5.0, -5.0), 150.0, 160, 19),     # 4x downsampling (area pre-filter path)
]


@pytest.mark.parametrize('offset,side_m,side_px,zoom', CASES)
def test_crop_markers_within_1px(marker_map, offset, side_m, side_px, zoom):
    path, plane, points = marker_map
    center = tuple(plane.latlon_from_xy_m(np.array(offset))[0])
    with MBTilesStore(path) as store:
        crop = store.crop(center, side_m, side_px, zoom=zoom)
    assert crop.image_rgb.shape == (side_px, side_px, 3)
    assert crop.image_rgb.dtype == np.uint8
    assert crop.m_per_px == pytest.approx(side_m / side_px)
    if zoom is not None:
        assert crop.zoom == zoom
    err = marker_errors_px(crop, plane, points)
    assert err.max() <= 1.0, f'max marker error {err.max():.3f} px'
    assert np.median(err) <= 0.35


def test_zoom_choice_prefers_coarsest_sufficient(marker_map):
    path, plane, _ = marker_map
    with MBTilesStore(path) as store:
        lat = plane.lat0_deg
        assert store.choose_zoom(lat, 0.5) == 18    # z18 is ~0.47 m/px here
        assert store.choose_zoom(lat, 0.3) == 19    # z19 is ~0.24 m/px
        assert store.choose_zoom(lat, 0.05) == 19   # finer than anything: the finest


def test_crop_frame_helpers(marker_map):
    path, plane, _ = marker_map
    with MBTilesStore(path) as store:
        crop = store.crop(plane.latlon_from_xy_m(np.zeros(2))[0], 64.0, 128)
    uv = crop.uv_px_from_xy_m(np.array([[0.0, 0.0], [16.0, 16.0]]))
    assert np.allclose(uv, [[64.0, 64.0], [96.0, 32.0]])  # east right, north up
    assert np.allclose(crop.xy_m_from_uv_px(uv), [[0.0, 0.0], [16.0, 16.0]])


def test_xyz_folder_matches_mbtiles(tmp_path, marker_map):
    path, plane, points = marker_map
    xyz_plane, _ = write_marker_map(tmp_path / 'xyz', xyz=True)
    center = tuple(plane.latlon_from_xy_m(np.array([10.0, -20.0]))[0])
    with MBTilesStore(path) as a, XYZFolderStore(tmp_path / 'xyz') as b:
        assert a.metadata.zooms == b.metadata.zooms
        assert a.tile_count() == b.tile_count()
        ca = a.crop(center, 70.0, 140)
        cb = b.crop(center, 70.0, 140)
    assert np.array_equal(ca.image_rgb, cb.image_rgb)  # PNG is lossless: identical pixels


def test_jpeg_tiles(tmp_path):
    path = tmp_path / 'jpeg.mbtiles'
    plane, points = write_marker_map(path, fmt='jpg', zooms=(19,))
    with MBTilesStore(path) as store:
        assert store.metadata.format == 'jpg'
        assert store.tile_bytes(19, *next(iter(_some_tile(store))))[:3] == b'\xff\xd8\xff'
        crop = store.crop(plane.latlon_from_xy_m(np.array([5.0, 5.0]))[0], 60.0, 200)
    err = marker_errors_px(crop, plane, points)
    assert err.max() <= 1.0


def _some_tile(store):
    row = store._query('SELECT tile_column, tile_row FROM tiles WHERE zoom_level=19 LIMIT 1')[0]
    yield row[0], (1 << 19) - 1 - row[1]


def test_concurrent_readers_match_sequential(marker_map):
    path, plane, _ = marker_map
    rng = np.random.default_rng(5)
    centers = [tuple(plane.latlon_from_xy_m(rng.uniform(-60, 60, 2))[0]) for _ in range(24)]
    with MBTilesStore(path, cache_mb=0.5) as store:  # small cache: evictions under contention
        sequential = [store.crop(c, 48.0, 96).image_rgb for c in centers]
        with ThreadPoolExecutor(max_workers=8) as pool:
            parallel = list(pool.map(lambda c: store.crop(c, 48.0, 96).image_rgb, centers))
    for s, p in zip(sequential, parallel, strict=True):
        assert np.array_equal(s, p)
