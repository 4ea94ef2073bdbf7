"""CIPER tracked over a recorded drive: the per-frame results through the drive tracker.

``ciper bag eval`` feeds :class:`~ciper_ros.runtime.tracker.DriveTracker` (the node's
tracker) the bag's odometry poses, its GNSS fixes (in the index's map frame, with the sigma
each reports) and the per-frame records of the localizer, in time order (at equal stamps:
odometry, then the fix, then the frame), and records the tracker's mean and covariance at
each camera frame, after that frame's update. One
:class:`~ciper_ros.metrics.frames.FrameRecord` per camera frame, judged by the one metrics
module like the others.
"""

from __future__ import annotations

import math

import numpy as np

from ciper_ros.metrics.frames import FrameRecord


def tracked_records(records: list[FrameRecord], rec, *, plane, config=None,
                    use_gnss: bool = True) -> tuple[list[FrameRecord], dict]:
    """(one tracked record per frame of ``records``, the tracker's summary).

    ``rec``: the :class:`~ciper_ros.bag.reader.Recording` the records came from (its
    odometry and fixes); ``plane``: the index's map frame (the records' frame).
    """
    from ciper_ros.experiments.baseline_eval import fix_rows
    from ciper_ros.runtime.tracker import DriveTracker

    events = [(int(t), 0, (x, y, yaw)) for t, x, y, yaw in rec.odometry]
    if use_gnss:
        for row in fix_rows(rec.fixes, plane):
            if np.isfinite(row[1]):
                events.append((int(round(row[0] * 1e9)), 1, row[1:]))
    events += [(int(r.stamp_ns), 2, i) for i, r in enumerate(records)]
    events.sort(key=lambda e: (e[0], e[1]))
    dt = DriveTracker(config=config)
    out: list[FrameRecord | None] = [None] * len(records)
    for stamp, kind, v in events:
        if kind == 0:
            dt.add_odometry(stamp, *v)
            continue
        if kind == 1:
            dt.add_fix(stamp, v[:2], float(v[2]))
            continue
        r = records[v]
        if r.ok and math.isfinite(r.x_m):
            dt.add_frame(stamp, (r.x_m, r.y_m), r.yaw_rad, r.covariance,
                         r.match_prob if math.isfinite(r.match_prob) else 0.5)
        t = FrameRecord(stamp_ns=r.stamp_ns, name=r.name)
        t.truth_x_m, t.truth_y_m, t.truth_yaw_rad = r.truth_x_m, r.truth_y_m, r.truth_yaw_rad
        t.truth_camera_xy_yaw = r.truth_camera_xy_yaw
        est = dt.estimate()
        if est is None:
            t.ok, t.reason = False, 'tracker: not initialised (no fix or frame yet)'
        else:
            t.ok = True
            t.x_m, t.y_m = (float(a) for a in est.xy_m)
            t.yaw_rad = float(est.yaw_rad)
            t.covariance = est.covariance
        out[v] = t
    est = dt.estimate()
    info = {'particles': dt.tracker.cfg.particles, 'frames_used': dt.frames_used,
            'fixes_used': dt.fixes_used, 'reinits': dt.tracker.reinits,
            'gnss': use_gnss, 'final_ess': None if est is None else round(est.ess, 1)}
    return out, info
