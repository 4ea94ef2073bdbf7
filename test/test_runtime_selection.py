"""Pose selection and covariance on hand-made hypotheses with known answers.

Each test names the deliberate bug it catches: correlations dropped, uniform weights,
unwrapped heading spread, floors not applied, a position or heading prior ignored.
"""

from dataclasses import fields
import math

import numpy as np
import pytest

from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.runtime.localizer import LocalizerConfig
from ciper_ros.runtime.selection import (
    CovarianceRule,
    floored_covariance,
    gate_reason,
    heading_window,
    MIN_CORRELATION_EIGENVALUE,
    select_pose,
    spread_covariance,
    tile_hypotheses,
    to_index_frame,
)

FLOOR_M, FLOOR_RAD = 0.5, math.radians(1.0)


def hyps(rows):
    """(x_m, y_m, yaw_deg, confidence) rows -> select_pose inputs, one candidate tile."""
    a = np.array(rows, np.float64)
    return {'xy_m': a[None, :, :2], 'yaw_rad': np.radians(a[None, :, 2]),
            'confidence': a[None, :, 3], 'similarity': np.array([1.0])}


def test_rule_defaults_are_the_localizer_defaults():
    cfg, rule = LocalizerConfig(), CovarianceRule()
    for f in fields(CovarianceRule):
        want = {'pos_scale': cfg.cov_scale, 'yaw_scale': cfg.yaw_cov_scale}.get(
            f.name, getattr(cfg, f.name, None))
        assert getattr(rule, f.name) == want, f.name
    assert (cfg.sigma_floor_m, cfg.yaw_sigma_floor_rad) == (FLOOR_M, FLOOR_RAD)


@pytest.mark.parametrize('shape', [(1, 1), (3, 4)])
def test_coinciding_hypotheses_get_the_floors(shape):
    # one hypothesis, or K x Q queries collapsed onto one pose: no spread at all
    k, q = shape
    xy = np.broadcast_to([12.0, -7.0], (k, q, 2))
    sel = select_pose(xy_m=xy, yaw_rad=np.full((k, q), 0.3),
                      confidence=np.linspace(0.9, 0.1, k * q).reshape(k, q),
                      similarity=np.full(k, 0.5),
                      rule=CovarianceRule(pos_scale=9.0, yaw_scale=4.0))
    assert sel.xy_m.tolist() == [12.0, -7.0] and sel.yaw_rad == 0.3
    assert sel.covariance == pytest.approx(np.diag([FLOOR_M ** 2, FLOOR_M ** 2,
                                                    FLOOR_RAD ** 2]), rel=1e-12, abs=0)
    assert sel.sigma_m == pytest.approx([FLOOR_M, FLOOR_M])


def test_a_spread_below_the_floors_is_raised_to_them():
    inp = hyps([(0.0, 0.0, 10.0, 0.9), (0.1, 0.0, 10.2, 0.9 - 1e-9)])
    cov = select_pose(**inp).covariance
    assert np.sqrt(np.diag(cov)) == pytest.approx([FLOOR_M, FLOOR_M, FLOOR_RAD], rel=1e-9)


def test_weighted_correlated_spread_has_the_known_covariance():
    # best at (10, 20, 30 deg); three others, weights 0.9 : 0.6 : 0.3 : 0.2 (similarity 1)
    inp = hyps([(10.0, 20.0, 30.0, 0.9), (14.0, 23.0, 36.0, 0.6), (8.0, 23.0, 26.0, 0.3),
                (9.0, 17.0, 35.0, 0.2)])
    sel = select_pose(**inp)
    assert (sel.candidate, sel.query) == (0, 0) and sel.xy_m.tolist() == [10.0, 20.0]
    # by hand: d = (4, 3, 6 deg), (-2, 3, -4 deg), (-1, -3, 5 deg), weights / 2.0
    r = math.radians(1.0)
    want = np.array([[0.6 * 16 + 0.3 * 4 + 0.2 * 1, 0.6 * 12 - 0.3 * 6 + 0.2 * 3,
                      (0.6 * 24 + 0.3 * 8 - 0.2 * 5) * r],
                     [0.0, 0.6 * 9 + 0.3 * 9 + 0.2 * 9, (0.6 * 18 - 0.3 * 12 - 0.2 * 15) * r],
                     [0.0, 0.0, (0.6 * 36 + 0.3 * 16 + 0.2 * 25) * r * r]]) / 2.0
    want = np.triu(want) + np.triu(want, 1).T
    assert want[0, 1] == pytest.approx(3.0) and want[0, 2] == pytest.approx(7.9 * r)
    assert sel.covariance == pytest.approx(want, rel=1e-9)
    corr = want / np.sqrt(np.outer(np.diag(want), np.diag(want)))
    assert np.linalg.eigvalsh(corr)[0] > 10 * MIN_CORRELATION_EIGENVALUE   # not shrunk
    # retrieval similarity weighs the candidates too: the same two tiles, second one worse
    two = {'xy_m': np.array([[[0.0, 0.0]], [[3.0, 4.0]]]), 'yaw_rad': np.zeros((2, 1)),
           'confidence': np.array([[0.8], [0.8]]), 'similarity': np.array([1.0, 0.0])}
    cov = select_pose(**two).covariance
    assert cov[:2, :2] == pytest.approx(np.array([[9.0, 12.0], [12.0, 16.0]]) / 3.0,
                                        rel=1e-2)      # w = 1/3 (rank one: shrunk 1e-3)


def test_heading_spread_wraps_across_pi():
    inp = hyps([(5.0, 5.0, 179.0, 0.6), (5.0, 5.0, -178.0, 0.6 - 1e-12)])
    cov = select_pose(**inp).covariance
    assert math.sqrt(cov[2, 2]) == pytest.approx(math.radians(3.0) / math.sqrt(2), rel=1e-6)
    assert cov[:2, :2] == pytest.approx(np.diag([FLOOR_M ** 2] * 2))
    assert cov[0, 2] == cov[1, 2] == 0.0
    direct = spread_covariance(xy_m=np.zeros((2, 2)), yaw_rad=np.radians([179.0, -179.0]),
                               weights=np.array([1.0, 1.0]), centre_xy_m=np.zeros(2),
                               centre_yaw_rad=math.radians(179.0))
    assert direct[2, 2] == pytest.approx(0.5 * math.radians(2.0) ** 2)


def test_collapsed_onto_two_poses_stays_invertible():
    inp = hyps([(0.0, 0.0, 0.0, 0.9)] * 4 + [(6.0, 8.0, 5.0, 0.3)] * 4)
    cov = select_pose(**inp).covariance
    w = 0.3 * 4 / (0.9 * 4 + 0.3 * 4)
    assert np.diag(cov) == pytest.approx([w * 36, w * 64, w * math.radians(5) ** 2])
    assert np.linalg.eigvalsh(cov)[0] > 0
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert corr[0, 1] == pytest.approx(1.0, abs=2e-3) and corr[0, 1] < 1.0


def test_calibration_scales_come_before_the_floors_and_ceilings():
    cov = np.array([[4.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1e-6]])
    out = floored_covariance(cov, CovarianceRule(pos_scale=0.01, yaw_scale=100.0))
    assert np.diag(out) == pytest.approx([FLOOR_M ** 2, FLOOR_M ** 2, FLOOR_RAD ** 2])
    assert out[0, 1] == pytest.approx(0.5 * FLOOR_M ** 2)          # correlation 0.5 kept
    big = floored_covariance(cov, CovarianceRule(pos_scale=1e4, sigma_ceiling_m=50.0))
    assert np.diag(big)[:2] == pytest.approx([2500.0, 2500.0])


def test_the_position_prior_reweights_and_chooses():
    # the model prefers (40, 0); a prior at the origin with sigma 10 m prefers (2, 0)
    inp = {'xy_m': np.array([[[40.0, 0.0], [2.0, 0.0]]]), 'yaw_rad': np.zeros((1, 2)),
           'confidence': np.array([[0.9, 0.5]]), 'similarity': np.array([1.0])}
    assert select_pose(**inp).xy_m.tolist() == [40.0, 0.0]
    sel = select_pose(**inp, prior_xy_m=np.zeros(2), prior_sigma_m=10.0)
    assert sel.xy_m.tolist() == [2.0, 0.0]
    assert sel.score == pytest.approx(0.5 * math.exp(-0.5 * 0.04))


def test_heading_window():
    assert heading_window(None, None, heading_sigmas=3.0) == (None, math.pi)
    assert heading_window(1.0, math.radians(5), heading_sigmas=3.0) == pytest.approx(
        (1.0, math.radians(15)))
    assert heading_window(-2.0, None, heading_sigmas=3.0) == (-2.0, math.pi)
    assert heading_window(0.5, 2.0, heading_sigmas=3.0) == (0.5, math.pi)


def test_gate_reason():
    kw = {'prior_xy_m': np.zeros(2), 'prior_sigma_m': 3.0, 'sigma_m': np.array([4.0, 1.0]),
          'gate_sigmas': 4.0}
    assert gate_reason(xy_m=np.array([0.0, 19.9]), **kw) == ''
    why = gate_reason(xy_m=np.array([0.0, 20.1]), **kw)
    assert why == '20.1 m from the prior, beyond the 20.0 m gate (4 sigma)'


def test_hypotheses_go_into_the_index_frame_through_their_tiles():
    plane = LocalTangentPlane(48.0, 11.0)
    east = plane.latlon_from_xy_m(np.array([[500.0, -300.0]]))[0]
    xy = np.array([[[0.0, 0.0], [10.0, 20.0]], [[0.0, 0.0], [10.0, 20.0]]])
    out = to_index_frame(plane, np.array([[48.0, 11.0], east]), xy)
    assert out[0] == pytest.approx(xy[0], abs=1e-6)
    assert out[1] == pytest.approx(xy[1] + [500.0, -300.0], abs=0.05)


def test_tile_hypotheses_one_per_tile_best_first_without_the_prior():
    """Catches: the prior in the weights, weights not normalised, another tile's spread."""
    xy = np.array([[[0.0, 0.0], [1.0, 0.0]],            # tile 0: two queries 1 m apart
                   [[50.0, 0.0], [50.0, 0.0]]])          # tile 1: two that coincide
    yaw = np.zeros((2, 2))
    conf = np.array([[0.5, 0.5], [0.9, 0.1]])
    sims = np.array([1.0, 1.0])
    rule = CovarianceRule(sigma_floor_m=0.01)
    out = tile_hypotheses(xy_m=xy, yaw_rad=yaw, confidence=conf, similarity=sims, rule=rule)
    assert [h.candidate for h in out] == [1, 0]         # tile 1's best (0.9) first
    assert sum(h.weight for h in out) == pytest.approx(1.0)
    assert out[0].weight == pytest.approx(0.9 / 1.4)
    assert np.allclose(out[0].xy_m, (50.0, 0.0))
    assert out[0].covariance[0, 0] == pytest.approx(0.01 ** 2)     # its own queries only
    assert out[1].covariance[0, 0] == pytest.approx(0.5, rel=1e-6)  # half at 1 m, weighted
    # the match probability weighs tiles; a far prior does not (a tracker weighs GNSS)
    m = tile_hypotheses(xy_m=xy, yaw_rad=yaw, confidence=conf, similarity=sims, rule=rule,
                        match_prob=np.array([1.0, 0.1]))
    assert [h.candidate for h in m] == [0, 1]
    assert m[0].weight == pytest.approx(0.5 / (0.5 + 0.09))


def test_tile_hypotheses_keep_each_tiles_distinct_modes():
    """Catches: a tile reduced to its best query when another mode is the right place."""
    xy = np.array([[[14.0, 0.0], [0.0, 0.0], [0.5, 0.0], [14.2, 0.0], [-20.0, 0.0]]])
    yaw = np.zeros((1, 5))
    conf = np.array([[0.9, 0.6, 0.5, 0.8, 0.05]])        # the last: below the mode ratio
    sims = np.array([1.0])
    rule = CovarianceRule(sigma_floor_m=0.01)
    out = tile_hypotheses(xy_m=xy, yaw_rad=yaw, confidence=conf, similarity=sims, rule=rule,
                          modes_per_tile=3, mode_separation_m=3.0)
    assert [tuple(h.xy_m) for h in out] == [(14.0, 0.0), (0.0, 0.0)]
    assert out[0].weight == pytest.approx(0.9 / 1.5) and out[1].weight == pytest.approx(0.6 / 1.5)
    # each mode's spread is its own queries': 14.2 beside 14, 0.5 beside 0
    assert out[0].covariance[0, 0] == pytest.approx(0.8 / 1.7 * 0.2 ** 2, rel=1e-6)
    assert out[1].covariance[0, 0] == pytest.approx(0.5 / 1.1 * 0.5 ** 2, rel=1e-6)
    one = tile_hypotheses(xy_m=xy, yaw_rad=yaw, confidence=conf, similarity=sims, rule=rule)
    assert len(one) == 1 and tuple(one[0].xy_m) == (14.0, 0.0)
