"""Training pairs: labels agree with the images; shards are deterministic and resumable."""

import json
import math

import numpy as np
import pytest

from ciper_ros.synth.folder import write_city_folder
from ciper_ros.synth.pairs import (
    city_seeds,
    CitySource,
    draw_pair,
    PairConfig,
    Render,
    ShardPairs,
    SyntheticPairs,
    write_shards,
)
from ciper_ros.synth.world import CityConfig


def marked_render(cfg: PairConfig, pano_w: int = 256) -> Render:
    """Build a render with a red dot at the camera and a red panorama column facing east.

    At render yaw 0 the panorama's centre column faces azimuth 0 (east).
    """
    S2 = cfg.render_side_px
    aerial = np.zeros((S2, S2, 3), np.uint8)
    aerial[S2 // 2 - 1:S2 // 2 + 1, S2 // 2 - 1:S2 // 2 + 1] = (255, 0, 0)  # camera at (S, S)
    ground = np.zeros((64, pano_w, 3), np.uint8)
    ground[:, pano_w // 2] = (255, 0, 0)
    return Render(ground=ground, aerial=aerial, yaw_rad=0.0, camera_latlon_deg=(0.0, 0.0),
                  city_seed=0)


@pytest.mark.parametrize('style', ['vigor', 'kitti'])
def test_offset_label_points_at_the_camera(style):
    cfg = PairConfig(style=style, aerial_side_px=128, aerial_side_m=64.0)
    render = marked_render(cfg)
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(50):
        p = draw_pair(render, cfg, rng)
        S = cfg.aerial_side_px
        assert p['aerial'].shape == (S, S, 3)
        # the camera dot covers pixels S/2 + du - 1 .. S/2 + du: its centre is at S/2 + du
        rr, cc = np.nonzero(p['aerial'][..., 0] == 255)
        u, v = cc.mean() + 0.5, rr.mean() + 0.5
        off = p['offset_xy_m']
        assert u == pytest.approx(S / 2 + off[0] / cfg.m_per_px, abs=1e-6)
        assert v == pytest.approx(S / 2 - off[1] / cfg.m_per_px, abs=1e-6)
        offsets.append(off)
    offsets = np.array(offsets)
    if style == 'vigor':   # anywhere in the central half of the crop
        assert np.abs(offsets).max() <= cfg.vigor_central_fraction * cfg.aerial_side_m / 2 + 0.5
        assert np.abs(offsets).max() > 8.0
    else:                  # centred on a noisy GNSS fix
        assert np.std(offsets) == pytest.approx(cfg.kitti_gnss_sigma_m, rel=0.35)


def test_negative_crops_hold_the_camera_outside_their_central_half():
    cfg = PairConfig(aerial_side_px=128, aerial_side_m=64.0, negative_crops=True)
    render = marked_render(cfg)
    rng = np.random.default_rng(1)
    S, far = cfg.aerial_side_px, []
    for _ in range(60):
        p = draw_pair(render, cfg, rng)
        neg = p['aerial_negative']
        assert neg.shape == (S, S, 3)
        rr, cc = np.nonzero(neg[..., 0] == 255)        # the camera dot is inside the crop
        du, dv = cc.mean() + 0.5 - S / 2, rr.mean() + 0.5 - S / 2
        off = max(abs(du), abs(dv))
        assert cfg.negative_min_fraction * S / 2 - 1 <= off < S / 2   # beyond the central half
        far.append(off)
    assert max(far) > 0.9 * S / 2 and min(far) < 0.7 * S / 2
    assert 'aerial_negative' not in draw_pair(render, PairConfig(aerial_side_px=128), rng)


@pytest.mark.parametrize('heading', ['unknown', 'prior'])
def test_panorama_roll_matches_the_yaw_label(heading):
    cfg = PairConfig(heading=heading, heading_prior_deg=10.0)
    render = marked_render(cfg)
    rng = np.random.default_rng(1)
    w = render.ground.shape[1]
    for _ in range(40):
        p = draw_pair(render, cfg, rng)
        col = int(np.flatnonzero(p['ground'][0, :, 0] == 255)[0])
        az = p['yaw_rad'] + math.pi - 2 * math.pi * (col + 0.5) / w   # azimuth of that column
        # the marked column faces east: azimuth 0 within half a column
        assert abs(math.remainder(az, 2 * math.pi)) <= math.pi / w + 1e-6
        if heading == 'prior':
            d = math.remainder(p['yaw_prior_rad'] - p['yaw_rad'], 2 * math.pi)
            assert abs(d) <= math.radians(10.0) + 1e-6
        else:
            assert math.isnan(p['yaw_prior_rad'])


def test_limited_fov_pairs_show_a_forward_cameras_footprint_with_a_heading_prior():
    cfg = PairConfig(aerial_side_m=48.0, aerial_side_px=96, limited_fov_prob=1.0,
                     limited_hfov_deg=(90.0, 90.0), limited_aspect=(2.0, 2.0))
    render = marked_render(cfg)
    render.ground[:] = 200                       # every pixel visible before the cut
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = draw_pair(render, cfg, rng)
        lit = p['ground'].max(axis=2) > 0
        cols = np.flatnonzero(lit.any(axis=0))
        assert len(cols) == pytest.approx(64, abs=2)          # 90 of 360 deg of 256 columns
        assert cols.min() == pytest.approx(96, abs=2)         # centred: the label's heading
        assert not lit[0].any() and not lit[-1].any()         # no zenith, no nadir
        d = math.degrees(math.remainder(float(p['yaw_prior_rad'] - p['yaw_rad']), 2 * math.pi))
        assert abs(d) <= cfg.heading_prior_deg + 1e-4
    # the default (no cut) draws exactly as before: no extra random numbers
    plain = PairConfig(aerial_side_m=48.0, aerial_side_px=96)
    a = draw_pair(render, plain, np.random.default_rng(3))
    b = draw_pair(render, PairConfig(aerial_side_m=48.0, aerial_side_px=96,
                                     limited_fov_prob=0.0), np.random.default_rng(3))
    assert np.array_equal(a['ground'], b['ground']) and math.isnan(a['yaw_prior_rad'])


def test_city_seed_splits_are_disjoint():
    train, val, test = (set(city_seeds(s, 400)) for s in ('train', 'val', 'test'))
    assert not (train & val) and not (train & test) and not (val & test)
    with pytest.raises(ValueError):
        city_seeds('holdout', 3)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp('city')
    write_city_folder(d, CityConfig(seed=21, size_m=300.0), zooms=(19,), progress=False)
    return CitySource.from_folder(d)


def test_on_the_fly_pairs_are_deterministic(source):
    for ground in ('panorama', 'pinhole'):
        cfg = PairConfig(ground=ground, aerial_side_m=48.0, aerial_side_px=96)
        ds = SyntheticPairs([source], cfg, length=4, seed=5)
        a, b = ds[2], ds[2]
        assert np.array_equal(a['ground'], b['ground'])
        assert np.array_equal(a['aerial'], b['aerial'])
        assert a['aerial'].shape == (96, 96, 3)
        expect = (64, 256, 3) if ground == 'panorama' else (128, 256, 3)
        assert a['ground'].shape == expect and a['ground'].std() > 10
        assert not np.array_equal(ds[1]['aerial'], ds[2]['aerial'])
    with pytest.raises(IndexError):
        ds[4]


class KilledError(Exception):
    pass


class FlakySource(CitySource):
    """A real city source that is 'killed' after a number of renders."""

    def __init__(self, inner: CitySource, fail_after: int) -> None:
        super().__init__(inner.world_path, inner.map_path)
        self.left = fail_after

    def render(self, cfg, rng):
        if self.left == 0:
            raise KilledError
        self.left -= 1
        return super().render(cfg, rng)


def test_shards_resume_after_a_kill_and_match_a_clean_run(source, tmp_path):
    cfg = PairConfig(aerial_side_m=48.0, aerial_side_px=64, pano_width=128, pano_height=32)
    clean = write_shards(tmp_path / 'clean', [source], cfg, n_renders=5, shard_size=2,
                         progress=False)
    with pytest.raises(KilledError):
        write_shards(tmp_path / 'resumed', [FlakySource(source, 3)], cfg, n_renders=5,
                     shard_size=2, progress=False)
    manifest = json.loads((tmp_path / 'resumed' / 'manifest.json').read_text())
    assert [s['index'] for s in manifest['shards']] == [0]   # only complete shards count
    first = (tmp_path / 'resumed' / 'shard_00000.npz').stat().st_mtime_ns
    write_shards(tmp_path / 'resumed', [source], cfg, n_renders=5, shard_size=2, progress=False)
    assert (tmp_path / 'resumed' / 'shard_00000.npz').stat().st_mtime_ns == first
    a, b = ShardPairs(clean, pairs_per_render=3), ShardPairs(tmp_path / 'resumed',
                                                             pairs_per_render=3)
    assert len(a) == len(b) == 15
    for i in (0, 7, 14):
        assert np.array_equal(a[i]['ground'], b[i]['ground'])
        assert np.array_equal(a[i]['offset_xy_m'], b[i]['offset_xy_m'])
    # several pairs per render differ (offsets, rolls)
    assert not np.array_equal(a[0]['offset_xy_m'], a[1]['offset_xy_m'])
    other = PairConfig(aerial_side_m=32.0, aerial_side_px=64)
    with pytest.raises(ValueError, match='different settings'):
        write_shards(tmp_path / 'resumed', [source], other, n_renders=5, shard_size=2,
                     progress=False)


def test_rig_pairs_show_a_ring_of_cameras_and_a_prior_only_when_narrow():
    from ciper_ros.synth.pairs import RIG_PRIOR_BELOW

    cfg = PairConfig(aerial_side_m=48.0, aerial_side_px=96, rig_fov_prob=1.0,
                     limited_hfov_deg=(90.0, 90.0), limited_aspect=(2.0, 2.0))
    render = marked_render(cfg)
    render.ground[:] = 200
    rng = np.random.default_rng(1)
    widths, priors = [], []
    for _ in range(30):
        p = draw_pair(render, cfg, rng)
        lit = p['ground'].max(axis=2) > 0
        seen = lit.any(axis=0).mean()
        widths.append(seen)
        assert not lit[0].any() and not lit[-1].any()         # pinholes: no zenith, no nadir
        # 2-6 cameras of 90 deg: at least one camera's width, at most all around
        assert 0.24 <= seen <= 1.0
        priors.append(not math.isnan(float(p['yaw_prior_rad'])))
        assert priors[-1] == (seen < RIG_PRIOR_BELOW)          # narrow rigs get a prior
    assert min(widths) < 0.6 and max(widths) > 0.95             # pairs to full surround
