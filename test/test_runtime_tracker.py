"""The drive tracker: odometry prediction, frame and GNSS updates, divergence, re-init."""

import math

import numpy as np
import pytest

from ciper_ros.runtime.tracker import odometry_increment, Tracker, TrackerConfig

ODOM_HZ, FRAME_EVERY = 20, 4           # odometry at 20 Hz, a frame every 4th step (5 Hz)


def _drive(seconds=60.0, speed=8.0):
    """Truth (n, 3) at ODOM_HZ: straight, a left turn, straight, a right turn."""
    dt = 1.0 / ODOM_HZ
    n = int(seconds * ODOM_HZ)
    t = np.arange(n) * dt
    rate = np.where((t % 20.0 > 8.0) & (t % 20.0 < 12.0), math.radians(22.5), 0.0)
    rate = np.where(t % 40.0 > 20.0, -rate, rate)
    yaw = np.cumsum(rate) * dt
    xy = np.cumsum(np.stack([np.cos(yaw), np.sin(yaw)], 1) * speed * dt, axis=0)
    return np.column_stack([xy, yaw])


GYRO_BIAS_RAD_S = math.radians(0.5)


def _odometry(truth, *, scale=1.02, gyro_bias=GYRO_BIAS_RAD_S):
    """Drifting odometry poses (scale error, gyro bias) integrated from truth increments."""
    dt = 1.0 / ODOM_HZ
    od = [truth[0].copy()]
    for a, b in zip(truth[:-1], truth[1:], strict=True):
        dx, dy, dyaw = odometry_increment(a, b)
        x, y, yaw = od[-1]
        dx, dy, dyaw = dx * scale, dy * scale, dyaw + gyro_bias * dt
        od.append(np.array([x + math.cos(yaw) * dx - math.sin(yaw) * dy,
                            y + math.sin(yaw) * dx + math.cos(yaw) * dy, yaw + dyaw]))
    return np.array(od)


def _run(truth, *, frames=None, gnss=None, start=None, seed=0, config=None):
    """Feed the tracker; frames(i, truth) -> (xy, yaw, cov, p), (hypotheses, p) or None.

    Returns the position errors (n,) and the tracker.
    """
    cfg = config or TrackerConfig(seed=seed)
    tr = Tracker(config=cfg)
    odom = _odometry(truth)
    x0, y0, a0 = truth[0] if start is None else start
    tr.initialise_from_covariance((x0, y0), a0, np.diag([4.0, 4.0, math.radians(5) ** 2]))
    errs = []
    for i in range(len(truth)):
        if i:
            tr.predict(*odometry_increment(odom[i - 1], odom[i]), 1.0 / ODOM_HZ)
        if gnss is not None and i % ODOM_HZ == 0:
            g = gnss(i, truth[i])
            if g is not None:
                tr.update_gnss(*g, t_s=i / ODOM_HZ)
        if frames is not None and i % FRAME_EVERY == 0:
            f = frames(i, truth[i])
            if f is not None and len(f) == 2:          # (hypotheses, p)
                tr.update_hypotheses(*f, t_s=i / ODOM_HZ)
            elif f is not None:
                tr.update_frame(*f, t_s=i / ODOM_HZ)
        est = tr.estimate()
        errs.append(math.hypot(*(est.xy_m - truth[i, :2])))
    return np.array(errs), tr


def _good_frames(sigma=0.7, outliers=0.0, seed=1):
    rng = np.random.default_rng(seed)
    cov = np.diag([sigma ** 2, sigma ** 2, math.radians(1.5) ** 2])

    def f(i, truth):
        if rng.random() < outliers:           # a wrong tile, with the low p it deserves
            off = rng.normal(0.0, 15.0, 2)
            return truth[:2] + off, truth[2] + rng.normal(0, 0.3), cov * 4, 0.3
        return (truth[:2] + rng.normal(0.0, sigma, 2), truth[2] + rng.normal(0, 0.026),
                cov, 0.95)
    return f


def test_odometry_increment_is_the_motion_in_the_first_pose_frame():
    dx, dy, dyaw = odometry_increment((1.0, 2.0, math.pi / 2), (1.0, 5.0, math.pi))
    assert (dx, dy, dyaw) == pytest.approx((3.0, 0.0, math.pi / 2))
    dx, dy, _ = odometry_increment((0.0, 0.0, 0.0), (0.0, 2.0, 0.0))
    assert (dx, dy) == pytest.approx((0.0, 2.0))


def test_initialise_and_predict_move_the_cloud_like_the_vehicle():
    tr = Tracker(config=TrackerConfig(particles=4000, seed=3))
    tr.initialise((10.0, -5.0), 1.0, yaw_rad=math.pi / 2, yaw_sigma_rad=0.01)
    est = tr.estimate()
    assert est.xy_m == pytest.approx([10.0, -5.0], abs=0.05)
    assert est.covariance[0, 0] == pytest.approx(1.0, rel=0.1)
    for _ in range(10):                       # 10 m forward, heading north
        tr.predict(1.0, 0.0, 0.0, 0.1)
    est = tr.estimate()
    assert est.xy_m == pytest.approx([10.0, 5.0], abs=0.1)
    assert est.yaw_rad == pytest.approx(math.pi / 2, abs=0.01)
    assert est.covariance[1, 1] > 1.0         # along-track noise grew
    with pytest.raises(Exception, match='positive'):
        tr.initialise((0.0, 0.0), 0.0)


def test_tracking_beats_the_per_frame_evidence_and_survives_outliers():
    truth = _drive()
    frames = _good_frames(sigma=1.0, outliers=0.2)
    errs, tr = _run(truth, frames=frames)
    settled = errs[ODOM_HZ * 5:]
    # a good frame alone: Rayleigh with sigma 1 m, median 1.18 m; outliers 15 m
    assert np.median(settled) < 0.8 * math.sqrt(2 * math.log(2))
    assert np.percentile(settled, 95) < 1.6 and tr.reinits == 0
    # without frames, drifting odometry alone walks away
    drift, _ = _run(truth)
    assert np.median(drift[ODOM_HZ * 30:]) > 3 * np.median(settled)


def test_converges_from_a_20_m_30_deg_wrong_start():
    truth = _drive()
    start = truth[0] + np.array([20.0 * math.cos(1.0), 20.0 * math.sin(1.0), math.radians(30)])
    errs, tr = _run(truth, frames=_good_frames(), start=start)
    assert errs[0] > 15.0
    assert tr.reinits >= 1                     # the confident frames disagreed: re-initialised
    assert np.max(errs[ODOM_HZ * 5:]) < 2.0     # within 5 s of driving
    assert np.median(errs[ODOM_HZ * 5:]) < 0.6


def test_a_multipath_excursion_cannot_drag_it():
    truth = _drive()

    def gnss(i, t):                            # 20 m off for 30 s, else 1.5 m noise
        rng = np.random.default_rng(i)
        bias = np.array([20.0, 0.0]) if 15 * ODOM_HZ <= i < 45 * ODOM_HZ else np.zeros(2)
        return t[:2] + bias + rng.normal(0.0, 1.5, 2), 2.0     # reported sigma under-states

    errs, tr = _run(truth, frames=_good_frames(), gnss=gnss)
    assert np.max(errs[ODOM_HZ * 5:]) < 1.5
    assert tr.gnss_reinits == 0                # the frames vouched for the filter
    # GNSS and odometry alone would follow it: the excursion is real for a GNSS-only update
    only, _ = _run(truth, gnss=gnss)
    assert np.max(only[40 * ODOM_HZ:45 * ODOM_HZ]) > 10.0


def test_recovers_after_a_kidnapping():
    truth = _drive()
    moved = truth.copy()
    k = 30 * ODOM_HZ
    moved[k:, :2] += np.array([-60.0, 40.0])   # carried away: odometry saw nothing of it
    rng = np.random.default_rng(5)
    cov = np.diag([0.5, 0.5, math.radians(1.5) ** 2])

    def frames(i, t):
        return t[:2] + rng.normal(0.0, 0.7, 2), t[2] + rng.normal(0, 0.02), cov, 0.95

    tr = Tracker(config=TrackerConfig(seed=0))
    odom = _odometry(truth)
    tr.initialise_from_covariance(truth[0, :2], truth[0, 2], cov)
    errs = []
    for i in range(len(truth)):
        if i:
            tr.predict(*odometry_increment(odom[i - 1], odom[i]), 1.0 / ODOM_HZ)
        if i % FRAME_EVERY == 0:
            tr.update_frame(*frames(i, moved[i]))
        errs.append(math.hypot(*(tr.estimate().xy_m - moved[i, :2])))
    errs = np.array(errs)
    assert errs[k + 1] > 50.0 and tr.reinits == 1
    assert np.max(errs[k + 3 * ODOM_HZ:]) < 2.0          # back within 3 s


def test_frames_that_match_nothing_change_nothing():
    tr = Tracker(config=TrackerConfig(seed=2))
    tr.initialise((0.0, 0.0), 1.0, yaw_rad=0.0, yaw_sigma_rad=0.05)
    before = tr.estimate()
    for _ in range(20):                        # confident-looking poses 30 m away, p ~ 0
        tr.update_frame((30.0, 0.0), 0.0, np.diag([0.25, 0.25, 1e-3]), 1e-4)
    after = tr.estimate()
    assert np.linalg.norm(after.xy_m - before.xy_m) < 0.1 and tr.reinits == 0
    assert not tr.update_frame((np.nan, 0.0), 0.0, np.eye(3), 0.9)   # refused, not fatal


def test_gnss_brings_back_a_filter_that_odometry_alone_carried_away():
    truth = _drive()
    start = truth[0] + np.array([160.0, -120.0, 0.5])        # 200 m, 29 deg off, confident

    def gnss(i, t):
        return t[:2] + np.random.default_rng(i).normal(0.0, 2.0, 2), 2.5

    errs, tr = _run(truth, gnss=gnss, start=start)
    assert errs[0] > 190.0 and tr.gnss_reinits == 1
    k = (int(TrackerConfig().gnss_diverge_s) + 2) * ODOM_HZ   # the window, then one fix
    assert np.median(errs[k:]) < 4.0


def test_gnss_far_beyond_multipath_re_initialises_even_while_frames_agree():
    """Catches: a filter lost 80 m away that frames searched around it keep there."""
    truth = _drive(40.0)
    odom = _odometry(truth)
    offset = np.array([60.0, -53.0])                    # 80 m: the look-alike block
    cov = np.diag([0.5, 0.5, math.radians(1.5) ** 2])
    cfg = TrackerConfig(seed=7)
    tr = Tracker(config=cfg)
    tr.initialise_from_covariance(truth[0, :2] + offset, truth[0, 2],
                                  np.diag([1.0, 1.0, math.radians(3) ** 2]))
    errs = []
    for i in range(len(truth)):
        t_s = i / ODOM_HZ
        if i:
            tr.predict(*odometry_increment(odom[i - 1], odom[i]), 1.0 / ODOM_HZ)
        if i % ODOM_HZ == 0:
            fix = truth[i, :2] + np.random.default_rng(i).normal(0.0, 1.0, 2)
            tr.update_gnss(fix, 2.5, t_s=t_s)
        if i % FRAME_EVERY == 0:                        # the frame sees what it is shown:
            where = truth[i, :2] + (offset if tr.gnss_reinits == 0 else 0.0)   # the look-alike
            tr.update_frame(where, truth[i, 2], cov, 0.95, t_s=t_s)
        errs.append(math.hypot(*(tr.estimate().xy_m - truth[i, :2])))
    assert tr.gnss_reinits == 1 and errs[0] > 75.0
    k = int(cfg.gnss_far_s + 2) * ODOM_HZ
    assert np.min(errs[:k - 3 * ODOM_HZ]) > 70.0        # the frames held it there...
    assert np.max(errs[k + 5 * ODOM_HZ:]) < 5.0         # ...until GNSS, 80 m off for 10 s


def _ambiguous_frames(seed=3):
    """Each frame two hypotheses: a wrong place 10-20 m off scoring 0.6, the truth 0.4."""
    rng = np.random.default_rng(seed)
    cov = np.diag([0.5, 0.5, math.radians(1.5) ** 2])

    def hyps(truth):
        a = rng.uniform(0, 2 * math.pi)
        wrong = truth[:2] + rng.uniform(10, 20) * np.array([math.cos(a), math.sin(a)])
        good = truth[:2] + rng.normal(0.0, 0.5, 2)
        return [(wrong, truth[2] + rng.normal(0, 0.3), cov, 0.6),
                (good, truth[2] + rng.normal(0, 0.026), cov, 0.4)]
    return hyps


def test_a_mixture_of_hypotheses_holds_where_the_top_one_misleads():
    truth = _drive(40.0)
    mix, top = _ambiguous_frames(), _ambiguous_frames()
    # the frames' own 0.7 m sigma (not the default floor, tuned for the model's frames)
    cfg = TrackerConfig(frame_sigma_floor_m=0.3)
    e_mix, _ = _run(truth, frames=lambda i, t: (mix(t), 0.9), config=cfg)
    # the same frames, only their best-scoring hypothesis (always the wrong one)
    e_top, _ = _run(truth, frames=lambda i, t: top(t)[0][:3] + (0.9,), config=cfg)
    assert np.median(e_mix) < 0.6 and np.percentile(e_mix, 95) < 1.5
    assert np.median(e_mix) < 0.5 * np.median(e_top)


def test_one_hypothesis_is_update_frame_and_bad_ones_are_dropped():
    cov = np.diag([1.0, 1.0, 0.01])
    a, b = Tracker(config=TrackerConfig(seed=5)), Tracker(config=TrackerConfig(seed=5))
    for tr in (a, b):
        tr.initialise_from_covariance((0.0, 0.0), 0.0, np.diag([4.0, 4.0, 0.05]))
    assert a.update_frame((1.0, 0.5), 0.1, cov, 0.8)
    assert b.update_hypotheses([((1.0, 0.5), 0.1, cov, 3.0),
                                ((np.nan, 0.0), 0.0, cov, 1.0),     # dropped: not finite
                                ((9.0, 9.0), 0.0, cov, 0.0),        # dropped: weight 0
                                ((9.0, 9.0), 0.0, -cov, 1.0)], 0.8)  # dropped: not PD
    assert np.allclose(a.logw, b.logw) and np.allclose(a.x, b.x)
    assert not b.update_hypotheses([((np.nan, 0.0), 0.0, cov, 1.0)], 0.8)
    assert not b.update_hypotheses([], 0.8)



def test_confident_wrong_frames_that_scatter_do_not_re_initialise():
    """Scattered confident wrong frames leave the filter on odometry, not re-initialised.

    Catches: re-initialising on any run of disagreeing frames (a forward camera's look-alikes
    along a road are confident and wrong, each somewhere else).
    """
    truth = _drive(20.0)
    rng = np.random.default_rng(7)
    cov = np.diag([0.3, 0.3, math.radians(1.0) ** 2])

    def scattered(i, t):
        if (i // FRAME_EVERY) % 8 == 0:                   # one frame in eight is right
            return t[:2] + rng.normal(0.0, 0.5, 2), t[2], cov, 0.9
        a = rng.uniform(0, 2 * math.pi)
        return (t[:2] + rng.uniform(15, 30) * np.array([math.cos(a), math.sin(a)]),
                t[2] + rng.normal(0, 0.2), cov, 0.9)

    errs, tr = _run(truth, frames=scattered)
    assert tr.reinits == 0 and np.max(errs) < 2.5

# ---------------------------------------------------------------------- the drive tracker
def _drive_tracker(seed=0, **drive):
    from ciper_ros.runtime.tracker import DriveTracker, DriveTrackerConfig

    return DriveTracker(config=TrackerConfig(seed=seed), drive=DriveTrackerConfig(**drive))


def test_a_late_frame_is_moved_to_the_odometry_time():
    """A frame that waited 0.5 s for the model weighs the filter where the vehicle is now."""
    S = 1_000_000_000
    dt = _drive_tracker()
    truth = _drive(2.0, speed=10.0)                     # 20 Hz, 10 m/s straight
    for i, pose in enumerate(truth[:11]):               # odometry up to t = 0.5 s
        dt.add_odometry(i * S // ODOM_HZ, *pose)
    cov = np.diag([0.04, 0.04, 1e-4])
    # a tight frame stamped t = 0 (the vehicle was 5 m behind its current place)
    dt.set_pose(10 * S // ODOM_HZ, truth[10, :2] + (3.0, 0.0), truth[10, 2], np.diag(
        [9.0, 9.0, 1e-3]))
    assert dt.add_frame(0, [(truth[0, :2], truth[0, 2], cov, 1.0)], 0.99)
    est = dt.estimate()
    assert np.linalg.norm(est.xy_m - truth[10, :2]) < 0.5        # now, not 5 m back
    back = dt.estimate_at(0)                                     # and moved back for a prior
    assert np.linalg.norm(back.xy_m - truth[0, :2]) < 0.5


def test_drive_tracker_starts_settles_relocalizes_and_takes_initial_poses():
    S = 1_000_000_000
    dt = _drive_tracker(settled_sigma_m=2.0)
    assert dt.status()['tracker'] == 'uninitialised' and dt.prior_at(0) is None
    dt.add_odometry(0, 0.0, 0.0, 0.0)
    assert dt.add_fix(0, (5.0, 5.0), 4.0)                  # a GNSS start: broad, converging
    assert dt.status()['tracker'] == 'converging' and dt.prior_at(0) is None
    cov = np.diag([0.25, 0.25, 1e-3])
    for k in range(1, 6):
        dt.add_odometry(k * S, 0.0, 0.0, 0.0)
        dt.add_frame(k * S, [((6.0, 4.0), 0.3, cov, 1.0)], 0.95)
    # tight, but the heading is only the frames' word until a GNSS course agrees
    assert dt.status()['tracker'] == 'converging' and dt.prior_at(5 * S) is None
    head = np.array([math.cos(0.3), math.sin(0.3)])
    for k in range(6, 9):                                   # 8 m/s along the heading
        d = 8.0 * (k - 5)
        dt.add_odometry(k * S, d, 0.0, 0.0)
        dt.add_fix(k * S, np.array([6.0, 4.0]) + d * head, 1.0)
        dt.add_frame(k * S, [(np.array([6.0, 4.0]) + d * head, 0.3, cov, 1.0)], 0.95)
    assert dt.status()['tracker'] == 'tracking'          # 16 m: the course agreed
    xy, sigma, yaw, yaw_sigma = dt.prior_at(8 * S)
    assert np.linalg.norm(xy - (6.0, 4.0) - 24.0 * head) < 0.5 and abs(yaw - 0.3) < 0.05
    assert sigma == pytest.approx(3.0) and yaw_sigma == pytest.approx(math.radians(3.0))
    # relocalize: no state, GNSS ignored, and the frame's hypotheses (all) start it again
    dt.relocalize()
    assert dt.status()['tracker'] == 'relocalizing' and dt.prior_at(8 * S) is None
    assert not dt.add_fix(8 * S, (5.0, 5.0), 1.0)
    far = [((100.0, 0.0), 0.0, cov, 0.5), ((-100.0, 0.0), 1.0, cov, 0.5)]
    assert dt.add_frame(8 * S, far, 0.9)
    x = dt.tracker.x
    assert 0.4 < np.mean(x[:, 0] > 0) < 0.6                # both places kept, half each
    assert dt.searching                                     # two places: not settled
    for k in range(9, 12):
        dt.add_odometry(k * S, 24.0, 0.0, 0.0)
        dt.add_frame(k * S, [((100.0, 0.0), 0.0, cov, 1.0)], 0.95)
    assert not dt.searching and dt.status()['tracker'] == 'tracking'   # frames alone
    assert np.linalg.norm(dt.estimate().xy_m - (100.0, 0.0)) < 0.5
    # initialpose: re-initialised there, at once
    dt.set_pose(11 * S, (-20.0, 7.0), -1.0, np.diag([0.04, 0.04, 1e-4]))
    est = dt.estimate()
    assert np.linalg.norm(est.xy_m - (-20.0, 7.0)) < 0.1 and abs(est.yaw_rad + 1.0) < 0.02
    assert dt.status()['tracker_pose_resets'] == 1 and dt.status()['tracker_relocalizations'] == 1


def test_the_published_covariance_is_scaled_and_the_filter_is_not():
    from ciper_ros.runtime.tracker import DriveTracker, DriveTrackerConfig

    cfg = DriveTrackerConfig(output_cov_scale=4.0, output_yaw_cov_scale=2.0)
    dt = DriveTracker(drive=cfg)
    dt.add_odometry(0, 0.0, 0.0, 0.0)
    dt.add_fix(0, np.array([3.0, 4.0]), 2.0)
    raw = dt.tracker.estimate().covariance
    pub = dt.estimate().covariance
    assert pub[:2, :2] == pytest.approx(4.0 * raw[:2, :2])
    assert pub[2, 2] == pytest.approx(2.0 * raw[2, 2])
    assert pub[0, 2] == pytest.approx(np.sqrt(8.0) * raw[0, 2])
    assert dt.estimate_at(0).covariance == pytest.approx(pub)
    assert not dt.settled()            # a fix start: heading unknown until a course agrees
    with pytest.raises(ValueError, match='output_cov_scale'):
        DriveTrackerConfig(output_cov_scale=0.0)


def _course(tr, truth_a, truth_b, odom_a, odom_b, sigma_rad, fix_xy):
    """Feed the tracker the GNSS course from truth_a to truth_b (the odometry between)."""
    from ciper_ros.geo.se2 import SE2

    d = SE2(*odom_a).inv() @ SE2(*odom_b)
    body = math.atan2(d.y_m, d.x_m) - d.yaw_rad          # in base_link's frame at b
    g = truth_b[:2] - truth_a[:2]
    return tr.update_course(math.atan2(g[1], g[0]), body, sigma_rad, xy_m=fix_xy, sigma_m=1.0)


def test_a_gnss_course_turns_a_filter_facing_backwards():
    """Catches: a wrong-way lock (a forward camera's other direction) that GNSS cannot end."""
    truth = _drive(20.0)
    odom = _odometry(truth)
    tr = Tracker(config=TrackerConfig(seed=4))
    tr.initialise_from_covariance(truth[0, :2], truth[0, 2] + math.pi,      # facing back
                                  np.diag([1.0, 1.0, math.radians(3) ** 2]))
    step = 2 * ODOM_HZ                                   # a course every 16 m
    agreed = []
    for i in range(1, len(truth)):
        tr.predict(*odometry_increment(odom[i - 1], odom[i]), 1.0 / ODOM_HZ)
        if i % step == 0:
            agreed.append(_course(tr, truth[i - step], truth[i], odom[i - step], odom[i],
                                  math.radians(5), truth[i, :2]))
    assert agreed[:2] == [False, True]                  # two disagree: re-initialised
    assert tr.course_reinits == 1 and tr.reinits == 1
    assert all(agreed[2:])
    est = tr.estimate()
    assert abs(math.remainder(est.yaw_rad - truth[-1, 2], 2 * math.pi)) < math.radians(5)
    assert math.hypot(*(est.xy_m - truth[-1, :2])) < 5.0


def test_one_wild_course_neither_re_initialises_nor_moves_the_heading():
    """Catches: a multipath ramp (one course 120 deg off) taken as a wrong-way filter."""
    truth = _drive(6.0)
    odom = _odometry(truth)
    tr = Tracker(config=TrackerConfig(seed=5))
    tr.initialise_from_covariance(truth[0, :2], truth[0, 2],
                                  np.diag([1.0, 1.0, math.radians(3) ** 2]))
    for i in range(1, len(truth)):
        tr.predict(*odometry_increment(odom[i - 1], odom[i]), 1.0 / ODOM_HZ)
    before = tr.estimate().yaw_rad
    wild = truth[-1].copy()
    wild[:2] = truth[0, :2] + 40.0 * np.array([math.cos(2.1), math.sin(2.1)])
    assert _course(tr, truth[0], wild, odom[0], odom[-1], math.radians(5), wild[:2]) is False
    assert tr.reinits == 0
    assert abs(math.remainder(tr.estimate().yaw_rad - before, 2 * math.pi)) < math.radians(1)


def test_a_fix_start_waits_for_a_course_before_its_heading_is_anyones_prior():
    """Catches: frames that claim the road's other way settling a GNSS start facing back."""
    S = 1_000_000_000
    dt = _drive_tracker(seed=6)
    truth = _drive(12.0)
    odom = _odometry(truth)
    cov = np.diag([0.5, 0.5, math.radians(2) ** 2])
    for i in range(len(truth)):
        t = i * S // ODOM_HZ
        dt.add_odometry(t, *odom[i])
        if i % 4 == 0:                                  # GNSS at 5 Hz, 1 m noise
            dt.add_fix(t, truth[i, :2] + np.random.default_rng(i).normal(0, 1.0, 2), 1.0)
        if i % FRAME_EVERY == 0:                        # frames favour the wrong way 2:1
            dt.add_frame(t, [(truth[i, :2], truth[i, 2] + math.pi, cov, 2.0),
                             (truth[i, :2], truth[i, 2], cov, 1.0)], 0.9)
        if i == ODOM_HZ:                                # 8 m driven: no course yet
            assert dt.status()['tracker'] == 'converging' and dt.prior_at(t) is None
    assert dt.settled()
    est = dt.estimate()
    assert abs(math.remainder(est.yaw_rad - truth[-1, 2], 2 * math.pi)) < math.radians(10)
    assert math.hypot(*(est.xy_m - truth[-1, :2])) < 3.0
