"""The GNSS + odometry EKF baseline: one hand-computed step, the gate, a drive."""

import math

import numpy as np
import pytest

from ciper_ros.baselines.gnss_odom import (
    GnssOdomConfig,
    GnssOdomFilter,
    run_gnss_odom_filter,
    track_errors,
)


def initialised(config=None):
    f = GnssOdomFilter(config=config)
    f.predict_to(0.0)
    f.update_odometry(10.0, 0.0)
    f.update_gnss(np.array([0.0, 0.0]), 1.0)     # anchor
    f.predict_to(2.0)                            # 20 m of odometry: the course is known
    f.update_gnss(np.array([20.0, 0.0]), 1.0)
    assert f.initialised
    return f


def test_one_step_matches_the_hand_computation():
    f = initialised()
    xy, yaw, cov, _ = f.estimate()
    assert xy.tolist() == [20.0, 0.0] and yaw == 0.0 and cov[0, 0] == pytest.approx(1.0)
    f.predict_to(2.1)
    # x' = x + v dt; P_xx' = P_xx + dt^2 P_vv + q_x dt (no yaw coupling along x at yaw 0)
    p_xx = 1.0 + 0.1 ** 2 * 0.05 ** 2 + 0.05 * 0.1
    assert f.ekf.x[0, 0] == pytest.approx(21.0)
    assert f.ekf.P[0, 0] == pytest.approx(p_xx)
    f.update_gnss(np.array([22.0, 0.0]), 1.0)
    gain = p_xx / (p_xx + 1.0)
    assert f.ekf.x[0, 0] == pytest.approx(21.0 + gain * 1.0, rel=1e-6)
    assert f.ekf.P[0, 0] == pytest.approx((1 - gain) * p_xx, rel=1e-6)


def test_the_mahalanobis_gate_rejects_an_excursion():
    f = initialised(GnssOdomConfig(gnss_rejection_mahalanobis=3.0))
    f.predict_to(2.1)
    assert not f.update_gnss(np.array([21.0, 30.0]), 1.0) and f.gnss_rejected == 1
    assert f.update_gnss(np.array([21.0, 0.5]), 1.0)


def test_a_straight_drive_with_noisy_fixes_beats_the_fixes():
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 60.0, 0.05)
    odom = np.column_stack([t, np.full_like(t, 10.0), np.zeros_like(t)])
    tf = np.arange(0.0, 60.0, 0.2)
    noisy = np.column_stack([10.0 * tf, np.zeros_like(tf)]) + rng.normal(0, 2.0, (len(tf), 2))
    fixes = np.column_stack([tf, noisy, np.full_like(tf, 2.0)])
    truth = np.column_stack([t, 10.0 * t, np.zeros_like(t)])
    track = run_gnss_odom_filter(odom, fixes)
    err = track_errors(track, truth)[track.initialised]
    fix_err = np.hypot(noisy[:, 0] - 10.0 * tf, noisy[:, 1])
    assert track.initialised[-1] and np.median(err) < 0.5 * np.median(fix_err)
    assert math.isfinite(track.yaw_rad[-1]) and abs(track.yaw_rad[-1]) < math.radians(3)


def test_bag_odometry_becomes_the_twist_the_filter_takes():
    from ciper_ros.experiments.baseline_eval import odometry_twist

    # a circle of radius 20 m at 5 m/s, counter-clockwise, 20 Hz odometry poses
    t = np.arange(0.0, 6.0, 0.05)
    w = 5.0 / 20.0
    yaw = w * t + math.pi / 2
    poses = [(int(round(ti * 1e9)), 20 * math.cos(w * ti), 20 * math.sin(w * ti), y)
             for ti, y in zip(t, yaw, strict=True)]
    tw = odometry_twist(poses)
    assert tw.shape == (len(t) - 1, 3)
    np.testing.assert_allclose(tw[:, 0], t[1:], atol=1e-9)
    np.testing.assert_allclose(tw[:, 1], 5.0, rtol=1e-3)     # chord vs arc: 1e-4 here
    np.testing.assert_allclose(tw[:, 2], w, rtol=1e-9)
    reverse = odometry_twist([(s, x, y, a + math.pi) for s, x, y, a in poses])
    np.testing.assert_allclose(reverse[:, 1], -5.0, rtol=1e-3)   # driving backwards
    with pytest.raises(Exception, match='needs odometry'):
        odometry_twist(poses[:3])


def test_bag_fixes_are_map_frame_rows_with_their_reported_sigma():
    from types import SimpleNamespace

    from ciper_ros.experiments.baseline_eval import fix_rows
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.runtime.gnss import DEFAULT_FIX_SIGMA_M

    plane = LocalTangentPlane(48.0, 11.0)
    ll = plane.latlon_from_xy_m(np.array([[30.0, -40.0]]))[0]

    def fix(status, cov_type, var):
        return SimpleNamespace(latitude=ll[0], longitude=ll[1],
                               status=SimpleNamespace(status=status),
                               position_covariance_type=cov_type,
                               position_covariance=[var, 0, 0, 0, var * 4, 0, 0, 0, 1])
    rows = fix_rows([(1_000_000_000, fix(0, 2, 4.0)), (2_000_000_000, fix(-1, 2, 4.0)),
                     (3_000_000_000, fix(0, 0, 4.0))], plane)
    # the node's rule: the larger horizontal standard deviation (variances 4 and 16)
    np.testing.assert_allclose(rows[0], [1.0, 30.0, -40.0, 4.0], atol=1e-6)
    assert math.isnan(rows[1, 1]) and rows[1, 0] == 2.0          # no fix: no position
    assert rows[2, 3] == DEFAULT_FIX_SIGMA_M                     # no covariance reported
