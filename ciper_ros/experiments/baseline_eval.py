"""The GNSS + wheel-odometry filter users already run, on the same recorded drive.

``ciper bag eval`` reports it beside CIPER: :class:`~ciper_ros.baselines.gnss_odom.
GnssOdomFilter` (robot_localization's 2-D EKF with navsat_transform, on filterpy) fed the
bag's own streams:

- wheel odometry: the twist (speed along the heading, yaw rate) of consecutive
  ``nav_msgs/Odometry`` poses, so the odometry's drift (scale error, gyro bias) is the
  filter's too;
- GNSS: every ``NavSatFix`` the node would take as a prior, in the index's map frame, with
  the sigma the node's rule reads from it (:func:`~ciper_ros.runtime.gnss.
  navsatfix_to_prior`: the larger horizontal standard deviation, 5 m when none is reported).

By default its noise parameters are tuned on this very drive against its ground truth
(:func:`~ciper_ros.baselines.gnss_odom.tune_gnss_odom_filter`): the baseline at its best,
an oracle no user has, so CIPER's margin over it is a lower bound. The tuned values are in
the report. One :class:`~ciper_ros.metrics.frames.FrameRecord` per camera frame (the
estimate at the last odometry time at or before the frame), judged by the one metrics
module as CIPER's records are.
"""

from __future__ import annotations

from dataclasses import asdict
import math

import numpy as np

from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.util.errors import UserError

MIN_ODOMETRY = 10                 # odometry messages the filter needs
# the tuning grid bag eval searches (50 points)
BAG_TUNING_GRID: dict[str, tuple[float, ...]] = {
    'process_noise_scale': (0.03, 0.1, 0.3, 1.0, 3.0),
    'gnss_sigma_scale': (1.0, 2.0, 4.0, 8.0, 16.0),
    'gnss_rejection_mahalanobis': (math.inf, 3.0),
}


def odometry_twist(odometry: list) -> np.ndarray:
    """Turn odometry poses ``(stamp_ns, x, y, yaw)`` into twist ``(t_s, v_mps, yaw_rate_rps)``.

    One row (n - 1 in all) per interval: its displacement along its mean heading and its
    heading change, over its duration (intervals without time skipped).
    """
    od = np.asarray(odometry, np.float64).reshape(-1, 4)
    if len(od) < MIN_ODOMETRY:
        raise UserError(f'the GNSS + odometry baseline needs odometry: {len(od)} messages '
                        f'(at least {MIN_ODOMETRY}); pass --odom-topic or --baseline off')
    t = od[:, 0] * 1e-9
    dt = np.diff(t)
    keep = dt > 0
    d = np.diff(od[:, 1:3], axis=0)
    dyaw = np.angle(np.exp(1j * np.diff(od[:, 3])))
    mid = od[:-1, 3] + dyaw / 2.0
    along = d[:, 0] * np.cos(mid) + d[:, 1] * np.sin(mid)
    rows = np.stack([t[1:], along / np.where(keep, dt, 1.0), dyaw / np.where(keep, dt, 1.0)],
                    axis=1)
    return rows[keep]


def fix_rows(fixes: list, plane) -> np.ndarray:
    """Turn NavSatFix messages into rows (m, 4) ``(t_s, x_m, y_m, reported_sigma_m)``.

    Positions in ``plane``; NaN ``x_m`` and ``reported_sigma_m`` for a message the node
    would refuse as a prior (no fix, invalid coordinates or covariance).
    """
    from ciper_ros.runtime.gnss import navsatfix_to_prior

    rows = []
    for stamp, msg in fixes:
        prior, _ = navsatfix_to_prior(msg)
        if prior is None:
            rows.append((stamp * 1e-9, math.nan, math.nan, math.nan))
            continue
        xy = plane.xy_m_from_latlon(np.array([[prior.lat_deg, prior.lon_deg]]))[0]
        rows.append((stamp * 1e-9, xy[0], xy[1], prior.sigma_m))
    return np.array(rows, np.float64).reshape(-1, 4)


def baseline_records(rec, *, plane, datum_latlon_deg=None, tune: bool = True,
                     config=None) -> tuple[list[FrameRecord], dict]:
    """(one record per camera frame, the filter's report) of the baseline on ``rec``.

    ``rec``: a :class:`~ciper_ros.bag.reader.Recording`; ``plane``: the index's map frame;
    ``tune``: tune the noise parameters on this drive's truth (needs truth); ``config``: a
    :class:`~ciper_ros.baselines.gnss_odom.GnssOdomConfig` to start from.
    """
    from ciper_ros.bag.reader import attach_truth, truth_in_index
    from ciper_ros.baselines.gnss_odom import (
        GnssOdomConfig,
        run_gnss_odom_filter,
        tune_gnss_odom_filter,
    )
    from ciper_ros.runtime.mount import Mount

    odom = odometry_twist(rec.odometry)
    fixes = fix_rows(rec.fixes, plane)
    if not np.isfinite(fixes[:, 1]).any():
        raise UserError('the GNSS + odometry baseline needs GNSS fixes: the bag has none '
                        'with a fix (pass --gnss-topic or --baseline off)')
    truth = truth_in_index(rec, plane, datum_latlon_deg)
    config = config or GnssOdomConfig()
    info = {'tuned_on': None, 'grid_points': 0}
    if tune:
        if not len(truth):
            raise UserError("tuning the baseline needs the bag's ground truth "
                            '(--baseline default runs it untuned)')
        t_truth = np.column_stack([truth[:, 0] * 1e-9, truth[:, 1:]])
        config, rows = tune_gnss_odom_filter([(odom, fixes, t_truth)], base=config,
                                             grid=BAG_TUNING_GRID)
        info |= {'tuned_on': 'this drive, against its ground truth (an oracle tuning: the '
                             'baseline at its best)', 'grid_points': len(rows),
                 'grid': {k: list(v) for k, v in BAG_TUNING_GRID.items()}}
    track = run_gnss_odom_filter(odom, fixes, config=config)
    info |= {'config': asdict(config), 'gnss_used': track.gnss_used,
             'gnss_rejected': track.gnss_rejected, 'fixes': int(len(fixes)),
             'fixes_with_position': int(np.isfinite(fixes[:, 1]).sum())}
    out = []
    for stamp, *_ in rec.images:
        r = FrameRecord(stamp_ns=stamp, name=str(stamp))
        j = int(np.searchsorted(track.t_s, stamp * 1e-9, side='right')) - 1
        if j < 0 or not np.isfinite(track.xy_m[j]).all():
            r.ok, r.reason = False, 'baseline: no estimate yet (no fix before this frame)'
        else:
            r.ok = True
            r.x_m, r.y_m = (float(v) for v in track.xy_m[j])
            r.yaw_rad = float(track.yaw_rad[j]) if track.initialised[j] else math.nan
            cov = np.diag([math.nan] * 3)
            cov[:2, :2] = track.cov_xy[j]
            cov[2, 2] = float(track.yaw_sigma_rad[j]) ** 2
            r.covariance = cov
        attach_truth(r, truth, mount=Mount())
        out.append(r)
    return out, info
