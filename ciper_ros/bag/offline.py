"""Offline runs of the one per-frame pipeline, for recordings and image folders.

``ciper localize``, ``ciper calibrate`` and the offline ``ciper bag eval`` all come through
:func:`offline_records`. A source is a recording (rosbag2, ROS 1 bag:
:func:`ciper_ros.bag.reader.bag_paths`) or an image folder. Recordings are fed to the
pipeline as the live node is fed (GNSS, CameraInfo by stamp, odometry, ``/tf_static``);
folders get one prior (or none) for every image.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ciper_ros.bag.reader import BagTopics, drive_frames, is_bag, read_recording
from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.runtime.calibration import fit_covariance_scales, uncalibrated
from ciper_ros.runtime.frames import folder_frames, run_frames
from ciper_ros.runtime.localizer import Prior
from ciper_ros.runtime.pipeline import FramePipeline, PipelineConfig
from ciper_ros.util.errors import UserError


def offline_records(localizer, source: str | os.PathLike, *,
                    config: PipelineConfig | None = None, topics: BagTopics | None = None,
                    datum_latlon_deg=None, prior: Prior | None = None,
                    use_gnss: bool = True, camera: PinholeCamera | None = None,
                    progress: bool = True) -> list[FrameRecord]:
    """Run every frame of ``source`` through the pipeline; one record per frame.

    ``use_gnss`` False: no prior at all (a kidnapped vehicle: the whole index is searched).
    ``prior`` / ``camera``: for image folders (recordings have their fixes and CameraInfo).
    """
    from tqdm import tqdm

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f'{source} does not exist')
    config = config or PipelineConfig()
    if not is_bag(source):
        if not source.is_dir():
            raise UserError(f'{source} is neither an image folder nor a recording '
                            '(rosbag2 folder, .mcap, .db3, ROS 1 .bag)')
        if use_gnss and prior is None:
            raise UserError('an image folder needs --prior LAT,LON[,SIGMA_M] or --no-prior')
        pipe = FramePipeline(localizer=localizer, config=config, use_gnss=False)
        return run_frames(pipe, folder_frames(source, prior=prior if use_gnss else None,
                                              camera=camera), progress=progress)
    rec = read_recording(source, topics or BagTopics())
    try:
        pipe = FramePipeline(localizer=localizer, config=config, use_gnss=use_gnss)
        out = []
        for r, _ in tqdm(drive_frames(pipe, rec, datum_latlon_deg=datum_latlon_deg),
                         total=len(rec.images), desc='localize (offline)', unit='frame',
                         disable=not progress):
            r.latency_ms = r.timings_ms.get('pipeline', math.nan)
            out.append(r)
    finally:
        rec.bag.close()
    if not out:
        raise UserError(f'{source} has no camera frames on {rec.topics.image}')
    return out


def tracked_run(localizer, source: str | os.PathLike, *, tracker,
                config: PipelineConfig | None = None, topics: BagTopics | None = None,
                datum_latlon_deg=None, use_gnss: bool = True, withhold_gnss_s: float = 0.0,
                progress: bool = True) -> tuple[list[FrameRecord], list[FrameRecord]]:
    """Run a recording through the pipeline with a drive tracker: (frames, tracked).

    ``tracker``: a :class:`~ciper_ros.runtime.tracker.DriveTracker` (odometry, fixes and
    frames weigh it; settled, it is each frame's prior). Per camera frame: the frame's own
    record, and the tracker's estimate at its stamp after it (judged by the same truth).
    ``withhold_gnss_s``: no fix for this long after the first image (a kidnapped start:
    the tracker begins from frames searched over the whole map).
    """
    from tqdm import tqdm

    if not is_bag(source):
        raise UserError(f'tracking needs a recording with odometry, not {source}')
    rec = read_recording(Path(source), topics or BagTopics())
    frames, tracked = [], []
    try:
        if not rec.odometry:
            raise UserError(f'{source} has no odometry on {rec.topics.odom}: nothing to '
                            'track with')
        pipe = FramePipeline(localizer=localizer, config=config or PipelineConfig(),
                             use_gnss=use_gnss, tracker=tracker)
        if withhold_gnss_s > 0 and rec.images:
            start = rec.images[0][0] + int(withhold_gnss_s * 1e9)
            rec.fixes = [f for f in rec.fixes if f[0] >= start]
        for r, _ in tqdm(drive_frames(pipe, rec, datum_latlon_deg=datum_latlon_deg),
                         total=len(rec.images), desc='localize (tracked)', unit='frame',
                         disable=not progress):
            r.latency_ms = r.timings_ms.get('pipeline', math.nan)
            frames.append(r)
            tracked.append(_tracked_record(r, pipe.tracked_at(r.stamp_ns)))
    finally:
        rec.bag.close()
    return frames, tracked


def _tracked_record(frame: FrameRecord, est) -> FrameRecord:
    t = FrameRecord(stamp_ns=frame.stamp_ns, name=frame.name)
    t.truth_x_m, t.truth_y_m, t.truth_yaw_rad = (frame.truth_x_m, frame.truth_y_m,
                                                 frame.truth_yaw_rad)
    t.truth_camera_xy_yaw = frame.truth_camera_xy_yaw
    t.latency_ms = frame.latency_ms
    if est is None:
        t.reason = 'tracker: not initialised (no fix or confident frame yet)'
        return t
    t.ok = True
    t.x_m, t.y_m = (float(v) for v in est.xy_m)
    t.yaw_rad, t.covariance = float(est.yaw_rad), est.covariance
    return t


def calibrate_recording(localizer, source: str | os.PathLike, *,
                        config: PipelineConfig | None = None,
                        topics: BagTopics | None = None, datum_latlon_deg=None,
                        statistic: str = 'p95', progress: bool = True) -> dict:
    """Fit covariance scales on a recording with ground truth (``ciper calibrate``).

    On the frames the localizer accepts (localized, match probability at its threshold):
    the ones whose covariance the node publishes.
    """
    if not is_bag(source):
        raise UserError(f'calibration needs a recording with ground truth, not {source}')
    records = offline_records(uncalibrated(localizer), source, config=config, topics=topics,
                              datum_latlon_deg=datum_latlon_deg, progress=progress)
    if not any(r.has_truth for r in records):
        raise UserError(f'{source} has no ground truth on '
                        f'{(topics or BagTopics()).truth} (calibration needs it)')
    # the frames the node would publish: a rejected frame's covariance is never seen
    return fit_covariance_scales([r for r in records if r.ok], statistic=statistic)
