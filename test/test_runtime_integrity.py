"""Integrity in the runtime: the match probability, its rejection rule, the mixture covariance."""

import math

import numpy as np
import pytest
import torch

from ciper_ros.maps.open import open_store
from ciper_ros.model.build import build_model, save_checkpoint
from ciper_ros.runtime.index import build_index, TileIndex
from ciper_ros.runtime.localizer import Localizer, LocalizerConfig, Prior
from ciper_ros.runtime.selection import CovarianceRule, match_mixture, select_pose
from ciper_ros.synth.folder import city_paths, write_city_folder
from ciper_ros.synth.nulls import null_image, NULL_KINDS
from ciper_ros.synth.world import CityConfig, World

from tinymodel import TINY_FINE_MODEL


@pytest.fixture(scope='module')
def tiny_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp('integrity')
    write_city_folder(root / 'city', CityConfig(seed=4, size_m=200.0), zooms=(19,),
                      progress=False)
    world_path, map_path = city_paths(root / 'city')
    torch.manual_seed(0)
    model = build_model('ciper_t2', **TINY_FINE_MODEL).eval()
    ckpt = save_checkpoint(root / 'tiny.pt', model, step=1)
    build_index(map_path=map_path, model_path=ckpt, out_dir=root / 'index', progress=False)
    index = TileIndex(root / 'index', model_path=ckpt)
    world = World.load(world_path)
    return {'model': model, 'index': index, 'store': open_store(map_path), 'world': world}


def localizer(scene, **cfg):
    return Localizer(model=scene['model'], index=scene['index'], store=scene['store'],
                     config=LocalizerConfig(**cfg))


def prior_at_centre(scene, sigma_m: float = 10.0) -> Prior:
    lat, lon = scene['world'].plane.latlon_from_xy_m(np.zeros((1, 2)))[0]
    return Prior(float(lat), float(lon), sigma_m=sigma_m)


def test_match_probability_is_reported_and_gates(tiny_scene):
    img = null_image('smooth', height=32, width=128, rng=np.random.default_rng(0))
    res = localizer(tiny_scene, min_match_prob=0.0).localize(img, prior_at_centre(tiny_scene))
    assert 0.0 < res.match_prob < 1.0 and res.ok
    assert res.to_dict()['match_prob'] == res.match_prob
    # the calibration's bias decides: a sure non-match is rejected with the reason
    res = localizer(tiny_scene, match_bias=-30.0).localize(img, prior_at_centre(tiny_scene))
    assert not res.ok and res.reason.startswith('no match: match probability 0.00')
    assert np.all(np.isfinite(res.covariance))          # the pose is still reported
    res = localizer(tiny_scene, match_bias=30.0).localize(img, prior_at_centre(tiny_scene))
    assert res.match_prob > 0.999


def test_the_covariance_grows_as_the_match_probability_falls(tiny_scene):
    img = null_image('sky', height=32, width=128, rng=np.random.default_rng(1))
    sig = []
    for bias in (30.0, 0.0, -3.0, -30.0):
        res = localizer(tiny_scene, match_bias=bias, min_match_prob=0.0).localize(
            img, prior_at_centre(tiny_scene, sigma_m=10.0))
        sig.append(math.sqrt(res.covariance[0, 0]))
    assert sig == sorted(sig) and sig[-1] == pytest.approx(10.0, rel=1e-3)


def test_match_mixture_limits():
    rule = CovarianceRule(sigma_ceiling_m=50.0, yaw_sigma_ceiling_rad=math.pi)
    cov = np.diag([1.0, 4.0, 0.01])
    assert np.allclose(match_mixture(cov, 1.0, prior_sigma_m=10.0, prior_yaw_sigma_rad=1.0,
                                     rule=rule), cov)
    half = match_mixture(cov, 0.5, prior_sigma_m=10.0, prior_yaw_sigma_rad=1.0, rule=rule)
    assert np.allclose(np.diag(half), [50.5, 52.0, 0.505])
    capped = match_mixture(cov, 0.0, prior_sigma_m=100.0, prior_yaw_sigma_rad=1.0, rule=rule)
    assert math.sqrt(capped[0, 0]) == pytest.approx(50.0)


def test_select_pose_weighs_tiles_by_match_probability():
    xy = np.array([[[0.0, 0.0]], [[10.0, 0.0]]])
    yaw = np.zeros((2, 1))
    conf = np.array([[0.9], [0.8]])
    sims = np.array([0.5, 0.5])
    assert select_pose(xy_m=xy, yaw_rad=yaw, confidence=conf, similarity=sims).candidate == 0
    sel = select_pose(xy_m=xy, yaw_rad=yaw, confidence=conf, similarity=sims,
                      match_prob=np.array([0.1, 0.9]))
    assert sel.candidate == 1


def test_null_images_are_what_they_say():
    rng = np.random.default_rng(0)
    imgs = {k: null_image(k, height=64, width=256, rng=rng) for k in NULL_KINDS}
    assert all(v.shape == (64, 256, 3) and v.dtype == np.uint8 for v in imgs.values())
    assert imgs['noise'].std() > 60 and imgs['flat'].reshape(-1, 3).std(0).max() == 0
    assert imgs['flat'].max() > 0                     # never read as unseen columns
    sky = imgs['sky'].astype(float)
    assert sky[:10, :, 2].mean() > sky[-10:, :, 2].mean()   # blue above, ground below
    with pytest.raises(ValueError, match='unknown null image kind'):
        null_image('fog', height=8, width=8, rng=rng)


def test_match_calibration_fits_platt_and_the_threshold():
    from ciper_ros.runtime.calibration import fit_match_calibration

    rng = np.random.default_rng(0)
    pos = rng.normal(4.0, 1.0, 400)
    neg = rng.normal(-2.0, 1.5, 400)
    fit = fit_match_calibration(pos, neg, max_false_accept=0.01)
    assert fit['match_scale'] > 0 and fit['usable']
    assert not fit_match_calibration(neg, pos)['usable']       # a head ranking nulls higher
    assert fit['null_accepted'] <= 0.01 and fit['real_accepted'] > 0.9
    p = 1 / (1 + np.exp(-(fit['match_scale'] * neg + fit['match_bias'])))
    assert np.mean(p >= fit['min_match_prob']) == fit['null_accepted']
    from ciper_ros.util.errors import UserError
    with pytest.raises(UserError, match='at least 5'):
        fit_match_calibration(pos[:3], neg)
