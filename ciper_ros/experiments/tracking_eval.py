"""CIPER tracked over a recorded drive: the node's pipeline with its drive tracker, offline.

``ciper bag eval`` runs the recording through
:class:`~ciper_ros.runtime.pipeline.FramePipeline` with a
:class:`~ciper_ros.runtime.tracker.DriveTracker` (as the node does when it has odometry):
odometry predicts, GNSS fixes and every frame's hypotheses weigh the filter, and once it has
settled its estimate is the next frame's prior. The tracker's mean and covariance at each
camera frame (after that frame's update) is one
:class:`~ciper_ros.metrics.frames.FrameRecord`, judged by the one metrics module like the
per-frame ones.
"""

from __future__ import annotations

import math

from ciper_ros.metrics.frames import FrameRecord


def tracked_records(localizer, bag, *, config=None, topics=None, datum=None,
                    tracker_config=None, drive_config=None, use_gnss: bool = True,
                    withhold_gnss_s: float = 0.0,
                    progress: bool = True) -> tuple[list[FrameRecord], dict]:
    """(one tracked record per camera frame of ``bag``, the tracker's summary).

    ``config``: the node's :class:`~ciper_ros.runtime.pipeline.PipelineConfig`;
    ``withhold_gnss_s``: no fix for this long from the first image (a kidnapped start).
    """
    from ciper_ros.bag.offline import tracked_run
    from ciper_ros.runtime.tracker import DriveTracker

    dt = DriveTracker(config=tracker_config, drive=drive_config)
    frames, tracked = tracked_run(localizer, bag, tracker=dt, config=config, topics=topics,
                                  datum_latlon_deg=datum, use_gnss=use_gnss,
                                  withhold_gnss_s=withhold_gnss_s, progress=progress)
    est = dt.estimate()
    sources: dict[str, int] = {}
    for r in frames:
        sources[r.prior_source or 'none'] = sources.get(r.prior_source or 'none', 0) + 1
    ms = [r.timings_ms['tracker'] for r in frames if 'tracker' in r.timings_ms]
    info = {'particles': dt.tracker.cfg.particles, 'frames_used': dt.frames_used,
            'fixes_used': dt.fixes_used, 'reinits': dt.tracker.reinits,
            'gnss_reinits': dt.tracker.gnss_reinits,
            'course_reinits': dt.tracker.course_reinits, 'gnss': use_gnss,
            'frame_priors': sources,
            'tracker_update_ms_median': float(sorted(ms)[len(ms) // 2]) if ms else math.nan,
            'final_ess': None if est is None else round(est.ess, 1)}
    return tracked, info
