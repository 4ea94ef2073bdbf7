"""KITTI and Ford cross-view loaders on tiny trees with the real layouts and formats."""

import math

import numpy as np
import pytest

from ciper_ros.data.build import build_dataset
from ciper_ros.data.common import DatasetError, IndexedDraws
from ciper_ros.data.ford import bearing_rad_from_quaternion, FordConfig, FordDataset
from ciper_ros.data.kitti import KittiConfig, KittiDataset, satmap_m_per_px

from datafixtures import build_ford, build_kitti, FORD_LOGS, quaternion_from_bearing_deg

S = 128


def dot_colour_at_label(item) -> np.ndarray:
    half = float(item['half_side_m'])
    off = item['xy'].numpy() * half
    m = 2 * half / S
    r = int(round((S - 1) / 2 - off[1] / m))
    c = int(round((S - 1) / 2 + off[0] / m))
    assert 0 <= r < S and 0 <= c < S, 'camera outside the crop'
    return item['aerial'][:, r, c].numpy() * 255


@pytest.fixture(scope='module')
def kitti(tmp_path_factory):
    root = tmp_path_factory.mktemp('kitti')
    return root, build_kitti(root)


@pytest.fixture(scope='module')
def ford(tmp_path_factory):
    root = tmp_path_factory.mktemp('ford')
    return root, build_ford(root)


# ------------------------------------------------------------------------------ KITTI
def test_kitti_scale_is_zoom_18_at_scale_2():
    assert satmap_m_per_px(49.015) == pytest.approx(0.1958, abs=5e-5)


def test_kitti_fixed_test_shifts_hand_computed(kitti):
    root, truth = kitti
    ds = KittiDataset(root, KittiConfig(split='test1', aerial_px=S))
    rng = np.random.default_rng(0)
    # frame 0: yaw 0 (east), shifts (0.5, -0.25, 0.3): camera 10 m ahead, 5 m right of centre
    lab = ds.labels(0, rng)
    assert lab['offset_xy_m'] == pytest.approx([10.0, -5.0], abs=1e-9)
    assert math.degrees(lab['yaw_prior_rad']) == pytest.approx(-3.0)
    # frame 1: yaw 90 deg (north), shifts (-1, 0.75, -1): 20 m behind, 15 m left -> (-15, -20)
    lab = ds.labels(1, rng)
    assert lab['offset_xy_m'] == pytest.approx([-15.0, -20.0], abs=1e-9)
    assert math.degrees(lab['yaw_prior_rad']) == pytest.approx(100.0)
    # camera-GPS offset: 1.08 m ahead and 0.26 m right of the GPS, in the map frame
    gps = truth[ds.frames[1]]
    from ciper_ros.geo.enu import LocalTangentPlane
    cam = LocalTangentPlane(gps['lat'], gps['lon']).xy_m_from_latlon(
        np.array([lab['camera_latlon_deg']]))[0]
    assert cam == pytest.approx([0.26, 1.08], abs=1e-6)      # heading north: right is east


@pytest.mark.parametrize('split', ['train', 'test1', 'test2'])
def test_kitti_crop_shows_the_camera_at_the_label(kitti, split):
    root, truth = kitti
    ds = KittiDataset(root, KittiConfig(split=split, aerial_px=S))
    rng = np.random.default_rng(5)
    for i in range(len(ds)):
        item = ds.sample(i, rng)
        assert float(item['yaw']) == pytest.approx(truth[ds.frames[i]]['yaw'], abs=1e-6)
        got = dot_colour_at_label(item)
        assert np.abs(got - [255, 40, 200]).max() < 60, (split, i, got)
        assert np.all(np.abs(item['xy'].numpy()) * float(item['half_side_m']) <= 20 * 2 ** .5
                      + 1e-3)
        d = math.remainder(float(item['yaw_prior']) - float(item['yaw']), 2 * math.pi)
        assert abs(d) <= math.radians(10) + 1e-6
    assert int(ds[len(ds) - 1]['group']) == (1 if split == 'train' else 0)   # drives per split


def test_kitti_unknown_heading_and_intrinsics(kitti):
    root, _ = kitti
    ds = KittiDataset(root, KittiConfig(split='test2', rotation_range_deg=180.0))
    assert math.isnan(float(ds[0]['yaw_prior']))
    K = ds.intrinsics(0)
    assert K[0, 0] == pytest.approx(721.5377) and K[1, 2] == pytest.approx(172.854)


def test_kitti_bad_inputs(kitti, tmp_path):
    root, _ = kitti
    with pytest.raises(DatasetError, match='split file'):
        KittiDataset(tmp_path)
    bad = tmp_path / 'test1_files.txt'
    bad.write_text('2011_09_26/2011_09_26_drive_0001_sync/0000000000.png 0.5 2.0 0\n')
    with pytest.raises(DatasetError, match=r'test1_files.txt:1: shifts must be in \[-1, 1\]'):
        KittiDataset(tmp_path, KittiConfig(split='test1'))
    bad.write_text('0000000000.png 0 0 0\n')
    with pytest.raises(DatasetError, match='is not <day>/<drive>/<frame>.png'):
        KittiDataset(tmp_path, KittiConfig(split='test1'))
    (tmp_path / 'train_files.txt').write_text((root / 'train_files.txt').read_text())
    ds = KittiDataset(tmp_path)      # files listed, tree missing: clear error on access
    with pytest.raises(DatasetError, match='oxts file not found'):
        ds[0]


# ------------------------------------------------------------------------------ Ford
@pytest.mark.parametrize('bearing,yaw_deg', [(90.0, 0.0), (0.0, 90.0), (225.0, -135.0),
                                             (350.0, 100.0)])
def test_ford_quaternion_heading_to_rep103(bearing, yaw_deg):
    from ciper_ros.geo.heading import yaw_rad_from_bearing_rad

    q = quaternion_from_bearing_deg(bearing)
    yaw = yaw_rad_from_bearing_rad(bearing_rad_from_quaternion(*q))
    assert math.degrees(math.remainder(yaw - math.radians(yaw_deg), 2 * math.pi)) \
        == pytest.approx(0.0, abs=1e-9)


def test_ford_labels_and_crops(ford):
    root, truth = ford
    ds = FordDataset(root, FordConfig(split='test', aerial_px=S))
    assert ds.logs == sorted(FORD_LOGS)
    assert len(ds) == 6
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        log_index, *_ = ds.rows[i]
        k = i % 3
        t = truth[(ds.logs[log_index], k)]
        lab = ds.labels(i, rng)
        assert lab['yaw_rad'] == pytest.approx(t['yaw'], abs=1e-9)
        assert lab['camera_en_m'] == pytest.approx(t['cam_en'], abs=1e-6)
        # test shifts u = 0.5 - 0.25 k (lateral), v = 0.25 k - 0.5 (longitudinal)
        u, v, theta = 0.5 - 0.25 * k, 0.25 * k - 0.5, 0.2 * k - 0.4
        c, s = math.cos(t['yaw']), math.sin(t['yaw'])
        fwd, left = 20 * v, 20 * u
        assert lab['offset_xy_m'] == pytest.approx([c * fwd - s * left, s * fwd + c * left])
        assert lab['yaw_prior_rad'] == pytest.approx(
            math.remainder(t['yaw'] - math.radians(10 * theta), 2 * math.pi))
        assert lab['m_per_px'] == pytest.approx(0.22, rel=0.005)
        item = ds[i]
        assert np.abs(dot_colour_at_label(item) - [40, 255, 120]).max() < 60
        assert int(item['group']) == log_index


def test_ford_train_split_selection_and_errors(ford, tmp_path):
    root, _ = ford
    ds = FordDataset(root, FordConfig(logs=(FORD_LOGS[0],), indices={FORD_LOGS[0]: [2, 0]}))
    assert len(ds) == 2 and ds.rows[0][1].name.startswith('15000000002')
    draws = IndexedDraws(ds, length=10, seed=1)
    assert [float(draws[i]['yaw']) for i in range(4)] == [float(draws[i]['yaw'])
                                                          for i in range(4)]
    with pytest.raises(DatasetError, match='beyond its 3 frames'):
        FordDataset(root, FordConfig(logs=(FORD_LOGS[0],), indices={FORD_LOGS[0]: [3]}))
    with pytest.raises(DatasetError, match='no Ford logs'):
        FordDataset(tmp_path)
    with pytest.raises(DatasetError, match='Ford calibration not found'):
        (tmp_path / 'L').mkdir()
        (tmp_path / 'L' / 'grd_sat_quaternion_latlon.txt').write_text('x\n')
        FordDataset(tmp_path)
    with pytest.raises(DatasetError, match='expected 9 fields'):
        FordDataset(tmp_path, FordConfig(camera_offset=False))


def test_build_dataset_from_a_spec(kitti, ford):
    from ciper_ros.model.config import ModelConfig

    mc = ModelConfig(ground_size=(32, 128), aerial_size=(64, 64))
    ds = build_dataset({'kind': 'kitti', 'root': str(kitti[0]), 'split': 'test1'}, mc)
    item = ds[0]
    assert item['ground'].shape == (3, 32, 128) and item['aerial'].shape == (3, 64, 64)
    ds = build_dataset({'kind': 'ford', 'root': str(ford[0]), 'split': 'test',
                        'logs': list(FORD_LOGS)}, mc)
    assert len(ds) == 6
    with pytest.raises(DatasetError, match='unknown kitti option'):
        build_dataset({'kind': 'kitti', 'root': str(kitti[0]), 'zoom': 3}, mc)
    with pytest.raises(DatasetError, match='kind must be one of'):
        build_dataset({'kind': 'cvusa', 'root': '.'}, mc)


def test_ciper_eval_on_a_dataset_tree(kitti, tmp_path, capsys):
    import json

    from ciper_ros.cli import main
    from ciper_ros.model.build import build_model, save_checkpoint

    from tinymodel import TINY_MODEL

    ckpt = tmp_path / 'tiny.pt'
    save_checkpoint(ckpt, build_model('ciper_t', **TINY_MODEL), step=0)
    out = tmp_path / 'eval.json'
    assert main(['eval', '--model', str(ckpt), '--dataset', 'kitti', '--root', str(kitti[0]),
                 '--set', 'split=test2', '--set', 'side_px=256', '--out', str(out)]) == 0
    r = json.loads(out.read_text())
    assert r['count'] == 3 and r['dataset']['split'] == 'test2'
    assert 'lateral_within_1m' in r['gt_tile'] and 'heading_within_1deg' in r['gt_tile']
    assert main(['eval', '--model', str(ckpt), '--dataset', 'ford', '--root',
                 str(tmp_path / 'missing')]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith('ciper: error: Ford root')
    assert 'Traceback' not in err
