"""VIGOR loader on tiny trees with the real layouts, names and label format."""

import math

import numpy as np
import pytest

from ciper_ros.data.common import DatasetError
from ciper_ros.data.vigor import (
    panorama_latlon,
    satellite_latlon,
    tile_m_per_px,
    VigorConfig,
    VigorDataset,
)
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.metrics.retrieval import retrieval_metrics

from datafixtures import build_vigor, CITY_CENTRES

S = 128


@pytest.fixture(scope='module', params=['original', 'reorganised'])
def tree(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f'vigor_{request.param}')
    return root, build_vigor(root, layout=request.param)


def aerial_pixel(item) -> tuple[int, int]:
    half = float(item['half_side_m'])
    off = item['xy'].numpy() * half
    m = 2 * half / S
    return (int(round((S - 1) / 2 - off[1] / m)), int(round((S - 1) / 2 + off[0] / m)))


def test_labels_point_at_the_camera(tree):
    root, truth = tree
    ds = VigorDataset(root, VigorConfig(split='train', aerial_px=S, heading='north'))
    assert len(ds) == 8      # 2 train panoramas x 4 cities
    for i in range(len(ds)):
        name = ds.pano_paths[i].name
        city, lat, lon, pos_tile, (row, col), rgb = truth[name]
        assert ds.sat_paths[ds.labels[i, 0]].name == pos_tile
        # the protocol's pixel: row 320 + d_row, col 320 - d_col on the 640 px tile
        assert ds.gt_pixel(i) == pytest.approx((row, col), abs=1e-3)
        # metres agree with geodesy between the panorama and the tile centre
        s_lat, s_lon = satellite_latlon(pos_tile)
        enu = LocalTangentPlane(s_lat, s_lon).xy_m_from_latlon(np.array([[lat, lon]]))[0]
        item = ds[i]
        off = item['xy'].numpy().astype(np.float64) * float(item['half_side_m'])
        assert np.allclose(off, enu, atol=0.002), (off, enu)
        assert tuple(item['camera_latlon_deg'].numpy()) == pytest.approx((lat, lon))
        # and the aerial crop shows the camera's dot at the labelled pixel
        r, c = aerial_pixel(item)
        got = item['aerial'][:, r, c].numpy() * 255
        assert np.abs(got - np.array(rgb)).max() < 40, (got, rgb)
        assert item['yaw'] == pytest.approx(math.pi / 2)    # north-aligned, no roll
        assert int(item['group']) == list(CITY_CENTRES).index(city)


def test_metres_per_pixel_follow_each_city_latitude(tree):
    root, _ = tree
    ds = VigorDataset(root, VigorConfig(split='train'))
    published = {'NewYork': 0.113248, 'Seattle': 0.100817, 'SanFrancisco': 0.118141,
                 'Chicago': 0.111262}
    for j, p in enumerate(ds.sat_paths):
        city = ds.cities[ds.sat_city[j]]
        assert tile_m_per_px(p.name) == pytest.approx(published[city], rel=0.006)
    # 640 px tiles: half side 320 px, not the 256 the released code assumed
    item = ds[0]
    assert float(item['half_side_m']) == pytest.approx(320 * ds.m_per_px(int(ds.labels[0, 0])),
                                                      rel=1e-6)


@pytest.mark.parametrize('heading', ['unknown', 'prior'])
def test_heading_from_roll_matches_the_north_column(tree, heading):
    root, _ = tree
    ds = VigorDataset(root, VigorConfig(split='train', heading=heading, ground_size=(32, 128),
                                        heading_prior_deg=10.0))
    rng = np.random.default_rng(3)
    for i in range(len(ds)):
        item = ds.sample(i, rng)
        g = item['ground'].numpy()
        w = g.shape[2]
        cols = np.flatnonzero(g.mean(axis=(0, 1)) > 0.9)      # the white north stripe
        u = cols.mean()
        az = float(item['yaw']) + math.pi - 2 * math.pi * (u + 0.5) / w
        assert abs(math.remainder(az - math.pi / 2, 2 * math.pi)) < 2 * math.pi / w
        if heading == 'prior':
            d = math.remainder(float(item['yaw_prior']) - float(item['yaw']), 2 * math.pi)
            assert abs(d) <= math.radians(10) + 1e-6
        else:
            assert math.isnan(float(item['yaw_prior']))


def test_limited_fov_label_follows_the_slice(tree):
    root, _ = tree
    ds = VigorDataset(root, VigorConfig(split='train', fov_deg=90.0, ground_size=(32, 64)))
    item = ds.sample(0, np.random.default_rng(1))
    assert item['ground'].shape == (3, 32, 64)
    assert math.isfinite(float(item['yaw']))


def test_splits_same_and_cross_area(tree):
    root, _ = tree
    assert len(VigorDataset(root, VigorConfig(area='same', split='test'))) == 4
    cross_train = VigorDataset(root, VigorConfig(area='cross', split='train'))
    cross_test = VigorDataset(root, VigorConfig(area='cross', split='test'))
    assert cross_train.cities == ('NewYork', 'Seattle')
    assert cross_test.cities == ('SanFrancisco', 'Chicago')
    assert len(cross_train) == len(cross_test) == 6
    train_names = {p.name for p in cross_train.pano_paths}
    assert not train_names & {p.name for p in cross_test.pano_paths}


def test_gallery_semi_positives_and_hit_rate(tree):
    root, _ = tree
    ds = VigorDataset(root, VigorConfig(area='same', split='test', aerial_px=32))
    gal = ds.gallery()
    assert gal.size == len(ds.sat_paths) == 4 * 12   # every tile of every city
    assert not gal.per_group
    assert gal.load(0).shape == (3, 32, 32)
    q = len(ds)
    assert gal.semi_positives.sum() == 3 * q
    assert not gal.semi_positives[np.arange(q), gal.positives].any()
    # a similarity ranking a semi-positive first: a hit, and a negative for recall
    sim = np.zeros((q, gal.size))
    sim[np.arange(q), gal.positives] = 0.5
    semi_first = ds.labels[:, 1]
    sim[np.arange(q), semi_first] = 0.9
    m = retrieval_metrics(sim, gal.positives, semi_positives=gal.semi_positives)
    assert m['recall@1'] == 0.0 and m['recall@5'] == 1.0
    assert m['hit_rate'] == 1.0 and m['hit_rate_vigor_code'] == 1.0


def test_semi_positive_training_keeps_the_camera_inside(tree):
    root, _ = tree
    ds = VigorDataset(root, VigorConfig(split='train', semi_positives=True))
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        for _ in range(3):
            item = ds.sample(i, rng)
            assert np.all(np.abs(item['xy'].numpy()) <= 1.0)


def test_uncorrected_labels_and_file_names(tmp_path):
    build_vigor(tmp_path, corrected=False, panos_per_city=2)
    ds = VigorDataset(tmp_path, VigorConfig(split='train'))
    assert ds.label_dir.name == 'splits'
    assert panorama_latlon('abc,40.5,-73.25,.jpg') == (40.5, -73.25)
    with pytest.raises(DatasetError, match='satellite_<lat>_<lon>'):
        satellite_latlon('tile_1.png')
    with pytest.raises(DatasetError, match='panorama file name'):
        panorama_latlon('abc.jpg')


def test_bad_trees_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match='not a directory'):
        VigorDataset(tmp_path / 'nope')
    with pytest.raises(DatasetError, match='no VIGOR label folder'):
        VigorDataset(tmp_path)
    build_vigor(tmp_path, panos_per_city=2)
    f = tmp_path / 'splits__corrected' / 'Chicago' / 'same_area_balanced_train__corrected.txt'
    good = f.read_text()
    f.write_text(good.split('\n')[0].rsplit(' ', 1)[0] + '\n')
    with pytest.raises(DatasetError, match=r'same_area_balanced_train__corrected.txt:1: '
                                           r'expected 13 fields'):
        VigorDataset(tmp_path)
    tok = good.split()
    tok[1] = 'satellite_1.0_2.0.png'
    f.write_text(' '.join(tok) + '\n')
    with pytest.raises(DatasetError, match='not in Chicago satellite_list'):
        VigorDataset(tmp_path)
    f.write_text(good)
    ds = VigorDataset(tmp_path)
    ds.pano_paths[0].write_bytes(b'not a jpeg')
    with pytest.raises(DatasetError, match='cannot decode image'):
        ds[0]
