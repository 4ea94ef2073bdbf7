"""Localizer on a synthetic city with the shipped model: beats the GNSS prior; bad input."""

import math
from pathlib import Path

import numpy as np
import pytest

from ciper_ros.maps.open import open_store
from ciper_ros.model.build import load_model
from ciper_ros.runtime.index import build_index, TileIndex
from ciper_ros.runtime.localizer import Localizer, LocalizerConfig, Prior
from ciper_ros.synth.folder import city_paths, write_city_folder
from ciper_ros.synth.pairs import sample_road_pose
from ciper_ros.synth.render import CameraPose, GroundRenderer
from ciper_ros.synth.world import CityConfig, World

SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'ciper_t_synthetic.pt'


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp('loc')
    write_city_folder(root / 'city', CityConfig(seed=3, size_m=400.0), zooms=(19,),
                      progress=False)        # a test-split city: never seen in training
    world_path, map_path = city_paths(root / 'city')
    build_index(map_path=map_path, model_path=SHIPPED, out_dir=root / 'index', progress=False)
    index = TileIndex(root / 'index', model_path=SHIPPED)
    # the match gate off: these tests are of the pose, covariance and prior plumbing
    loc = Localizer(model=load_model(SHIPPED), index=index, store=open_store(map_path),
                    config=LocalizerConfig(min_match_prob=0.0))
    world = World.load(world_path)
    return {'loc': loc, 'world': world, 'renderer': GroundRenderer(world, epoch=0),
            'index': index}


def frames(scene, n: int, seed: int, sigma_m: float = 5.0):
    world, r = scene['world'], scene['renderer']
    rng = np.random.default_rng(seed)
    for _ in range(n):
        xy, yaw = sample_road_pose(world, rng, margin_m=60.0)
        img = r.panorama(CameraPose(xy[0], xy[1], yaw), width=256, height=64)
        noise = rng.normal(0.0, sigma_m, 2)
        prior_ll = world.plane.latlon_from_xy_m((xy + noise)[None])[0]
        true_ll = world.plane.latlon_from_xy_m(xy[None])[0]
        yield img, prior_ll, true_ll, yaw, float(np.linalg.norm(noise))


def test_localizer_beats_the_gnss_prior(scene):
    loc, index = scene['loc'], scene['index']
    err, prior_err, yaw_err = [], [], []
    for img, prior_ll, true_ll, yaw, pe in frames(scene, 60, seed=1):
        res = loc.localize(img, Prior(prior_ll[0], prior_ll[1], sigma_m=5.0))
        assert res.ok, res.reason
        true_xy = index.plane.xy_m_from_latlon(true_ll[None])[0]
        err.append(float(np.linalg.norm(res.xy_m - true_xy)))
        prior_err.append(pe)
        yaw_err.append(abs(math.degrees(math.remainder(res.yaw_rad - yaw, 2 * math.pi))))
        assert np.all(np.isfinite(res.covariance)) and np.all(np.linalg.eigvalsh(
            res.covariance) > 0)
        assert set(res.timings_ms) >= {'candidates', 'ground_encoder', 'retrieval',
                                       'aerial_encoder', 'pose_decoder', 'total'}
    print(f'median error {np.median(err):.2f} m (prior {np.median(prior_err):.2f} m), '
          f'heading {np.median(yaw_err):.1f} deg')
    assert np.median(err) < 0.9 * np.median(prior_err)     # measured: 0.73
    assert np.median(yaw_err) < 15.0


def test_heading_prior_and_cache(scene):
    loc = scene['loc']
    img, prior_ll, _, yaw, _ = next(frames(scene, 1, seed=5))
    p = Prior(prior_ll[0], prior_ll[1], sigma_m=5.0, yaw_rad=yaw + 0.05,
              yaw_sigma_rad=math.radians(5))
    first = loc.localize(img, p)
    hits = loc.cache.hits
    again = loc.localize(img, p)
    assert loc.cache.hits >= hits + len(again.candidates)        # every tile from the cache
    assert again.yaw_rad == pytest.approx(first.yaw_rad)
    assert abs(math.remainder(again.yaw_rad - yaw, 2 * math.pi)) < math.radians(20)


def test_no_prior_searches_the_whole_index(scene):
    loc = scene['loc']
    img, *_ = next(frames(scene, 1, seed=9))
    res = loc.localize(img, None)
    assert res.ok and len(res.candidates) == LocalizerConfig().no_prior_top


def test_bad_inputs_are_rejected_with_a_reason(scene):
    loc = scene['loc']
    img, prior_ll, *_ = next(frames(scene, 1, seed=2))
    for bad in (img[..., :1], img.astype(np.float32), img[0]):
        with pytest.raises(ValueError, match='image must be'):
            loc.localize(bad, None)
    for wrong in (np.zeros((480, 640, 3), np.uint8), np.zeros((4, 16, 3), np.uint8)):
        with pytest.raises(ValueError, match='wrong camera'):
            loc.localize(wrong, None)
    assert loc.localize(np.zeros((128, 256, 3), np.uint8), None).candidates   # 2:1 pano
    res = loc.localize(img, Prior(math.nan, prior_ll[1]))
    assert not res.ok and 'not finite' in res.reason
    res = loc.localize(img, Prior(prior_ll[0], prior_ll[1], sigma_m=0.0))
    assert not res.ok and 'sigma_m must be positive' in res.reason
    res = loc.localize(img, Prior(prior_ll[0] + 0.1, prior_ll[1]))      # 11 km away
    assert not res.ok and 'no indexed tile' in res.reason
    # gating: a result farther from the prior than the gate is returned, but not ok
    strict = Localizer(model=loc.model, index=loc.index, store=loc.store,
                       config=LocalizerConfig(gate_sigmas=1e-3))
    res = strict.localize(img, Prior(prior_ll[0], prior_ll[1], sigma_m=5.0))
    assert not res.ok and 'gate' in res.reason and np.isfinite(res.lat_deg)


def test_forward_camera_image_goes_into_the_panorama_model(scene):
    from ciper_ros.geo.camera import PinholeCamera

    loc, world, r = scene['loc'], scene['world'], scene['renderer']
    cam = PinholeCamera.from_hfov(320, 240, 90.0)
    xy, yaw = sample_road_pose(world, np.random.default_rng(4), margin_m=60.0)
    img = r.pinhole(CameraPose(xy[0], xy[1], yaw), cam)
    with pytest.raises(ValueError, match='wrong camera'):      # a 4:3 image as it is
        loc.localize(img, None)
    pano = loc.as_model_input(img, cam)
    assert pano.shape == (64, 256, 3) and not pano[:, :80].any() and pano[:, 128].any()
    ll = world.plane.latlon_from_xy_m(xy[None])[0]
    res = loc.localize(img, Prior(ll[0], ll[1], sigma_m=5.0, yaw_rad=yaw,
                                  yaw_sigma_rad=math.radians(5)), camera=cam)
    assert np.isfinite(res.lat_deg) and res.candidates
    with pytest.raises(ValueError, match='the camera'):
        loc.localize(img[:100], None, camera=cam)


def test_a_heading_prior_constrains_the_heading(scene):
    # a prior 90 deg off the true heading: honoured, the result stays inside its window
    # (3 sigma + one anchor bin + the decoder's residual); ignored, it finds the truth
    loc = scene['loc']
    img, prior_ll, _, yaw, _ = next(frames(scene, 1, seed=5))
    free = loc.localize(img, Prior(prior_ll[0], prior_ll[1], sigma_m=5.0))
    wrong = yaw + math.pi / 2
    assert abs(math.remainder(free.yaw_rad - wrong, 2 * math.pi)) > math.radians(60)
    sigma = math.radians(5.0)
    res = loc.localize(img, Prior(prior_ll[0], prior_ll[1], sigma_m=5.0, yaw_rad=wrong,
                                  yaw_sigma_rad=sigma))
    window = LocalizerConfig().heading_sigmas * sigma + math.pi / 32 + 0.35
    assert abs(math.remainder(res.yaw_rad - wrong, 2 * math.pi)) <= window + 1e-6


def test_one_hypothesis_gets_the_covariance_floors(scene):
    # spread_top=1: the best hypothesis alone, no spread; the floors set the covariance
    loc = scene['loc']
    one = Localizer(model=loc.model, index=loc.index, store=loc.store,
                    config=LocalizerConfig(spread_top=1, cov_scale=4.0, min_match_prob=0.0,
                                           match_bias=50.0))   # p = 1: no prior mixed in
    img, prior_ll, *_ = next(frames(scene, 1, seed=2))
    res = one.localize(img, Prior(prior_ll[0], prior_ll[1], sigma_m=5.0))
    cfg = one.cfg
    assert np.array_equal(res.covariance, np.diag([cfg.sigma_floor_m ** 2] * 2 +
                                                  [cfg.yaw_sigma_floor_rad ** 2]))


def test_onnxruntime_backend_localizes_like_torch(scene, tmp_path):
    """The defaults end to end: export as shipped, LocalizerConfig(), GNSS sigma 10 m."""
    from ciper_ros.runtime.backends import make_backend
    from ciper_ros.runtime.export import export_onnx

    export_onnx(SHIPPED, tmp_path / 'onnx')
    loc = scene['loc']
    assert loc.cfg == LocalizerConfig(min_match_prob=0.0)   # else the defaults
    ort_loc = Localizer(model=make_backend('onnxruntime', model_path=SHIPPED,
                                           export_dir=tmp_path / 'onnx'),
                        index=loc.index, store=loc.store, config=loc.cfg)
    n_cand = []
    for i, (img, prior_ll, *_) in enumerate(frames(scene, 4, seed=11, sigma_m=10.0)):
        p = Prior(prior_ll[0], prior_ll[1], sigma_m=10.0) if i < 3 else None
        a, b = loc.localize(img, p), ort_loc.localize(img, p)
        assert b.ok and a.ok, b.reason
        assert a.tile_id == b.tile_id and a.candidates == b.candidates
        n_cand.append(len(b.candidates))
        print(f'onnx vs torch: {np.linalg.norm(a.xy_m - b.xy_m):.2e} m, '
              f'{abs(a.yaw_rad - b.yaw_rad):.2e} rad')
        # float32 graphs: measured up to 1.6e-6 m and 0 rad on these frames
        assert np.linalg.norm(a.xy_m - b.xy_m) < 1e-5
        assert abs(a.yaw_rad - b.yaw_rad) < 1e-5
        assert np.allclose(a.covariance, b.covariance, rtol=1e-4, atol=1e-9)
    # 9 candidates with a prior (the export's batch), 10 without (two decoder runs)
    assert LocalizerConfig().top_k in n_cand and n_cand[-1] == LocalizerConfig().no_prior_top
