"""Geometric baseline: images of a known flat ground are localized exactly.

They are made by the flat-ground camera model, so the projection and its conventions
(columns, rows, headings, crop pixels) are checked end to end.
"""

import math

import cv2
import numpy as np
import pytest

from ciper_ros.baselines.geometric import GeometricConfig, localize_in_crop

S, M = 128, 0.5                      # aerial crop: 128 px at 0.5 m/px
H_CAM = 1.7


def texture(seed=0):
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((S, S, 3)).astype(np.float32), (0, 0), 2.0)
    return (t - t.min()) / (t.max() - t.min())


def sample(aerial, east, north, cam):
    """Aerial colour at east/north metres from the camera (at ``cam`` from the centre)."""
    col = S / 2 + (cam[0] + east) / M - 0.5
    row = S / 2 - (cam[1] + north) / M - 0.5
    return cv2.remap(aerial, col.astype(np.float32), row.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def panorama(aerial, cam, yaw, w=512, h=128):
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    az = yaw + math.pi - 2 * math.pi * (u + 0.5) / w
    elev = math.pi / 2 - math.pi * (v + 0.5) / h
    d = np.where(elev < 0, H_CAM / np.tan(np.maximum(-elev, 1e-3)), 0.0)
    img = sample(aerial, d * np.cos(az), d * np.sin(az), cam)
    img[elev >= 0] = 0.8                                  # sky
    return img


def pinhole(aerial, cam, yaw, w=256, h=192, hfov=90.0):
    f = (w / 2) / math.tan(math.radians(hfov) / 2)
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    x, y = (u + 0.5 - w / 2) / f, (v + 0.5 - h / 2) / f
    fwd = np.where(y > 0, H_CAM / np.maximum(y, 1e-6), 0.0)
    left = -x * fwd
    east = fwd * math.cos(yaw) - left * math.sin(yaw)
    north = fwd * math.sin(yaw) + left * math.cos(yaw)
    img = sample(aerial, east, north, cam)
    img[y <= 0] = 0.8
    return img


@pytest.mark.parametrize('cam, yaw_deg', [((5.5, -3.0), 40.0), ((-10.0, 7.5), -135.0)])
def test_panorama_from_a_known_ground_is_localized_exactly(cam, yaw_deg):
    aerial = texture()
    yaw = math.radians(yaw_deg)
    off, est_yaw, score = localize_in_crop(panorama(aerial, cam, yaw), aerial, m_per_px=M,
                                           cfg=GeometricConfig(yaw_bins=72))
    assert np.linalg.norm(off - cam) <= M + 1e-9          # within one aerial pixel
    assert abs(math.degrees(math.remainder(est_yaw - yaw, 2 * math.pi))) <= 2.5
    assert score > 0.9


def test_pinhole_with_a_heading_prior_is_localized_exactly():
    aerial = texture(1)
    cam, yaw = (3.0, 8.0), math.radians(100.0)
    off, est_yaw, _ = localize_in_crop(pinhole(aerial, cam, yaw), aerial, m_per_px=M,
                                       ground_kind='pinhole',
                                       yaw_prior_rad=yaw + math.radians(6.0),
                                       yaw_range_rad=math.radians(10.0),
                                       cfg=GeometricConfig(yaw_bins=21))
    assert np.linalg.norm(off - cam) <= M + 1e-9
    assert abs(math.degrees(math.remainder(est_yaw - yaw, 2 * math.pi))) <= 1.0
    with pytest.raises(ValueError, match='ground_kind'):
        localize_in_crop(aerial, aerial, m_per_px=M, ground_kind='fisheye')


def test_ciper_eval_runs_the_baseline_on_the_models_pairs(tmp_path, capsys):
    import json

    from ciper_ros.cli import main
    from ciper_ros.synth.folder import write_city_folder
    from ciper_ros.synth.world import CityConfig

    write_city_folder(tmp_path / 'city', CityConfig(seed=3, size_m=200.0), zooms=(19,),
                      progress=False)
    out = tmp_path / 'geo.json'
    assert main(['eval', '--baseline', 'geometric', '--city', str(tmp_path / 'city'),
                 '--n', '3', '--aerial-side-m', '40', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['gt_tile']['count'] == 3 and result['pairs']['ground'] == 'panorama'
    assert 0 <= result['gt_tile']['position_error_m_median'] < 40
    assert main(['eval', '--city', str(tmp_path / 'city')]) == 2
    assert '--model' in capsys.readouterr().err
