"""One camera frame -> a base_link pose: the one per-frame path of every tool (no rclpy).

The node, ``ciper localize``, ``ciper calibrate``, ``ciper bag eval`` (offline, and the node
it runs online) and the chained evaluation all call :meth:`FramePipeline.process`, so the
same frame gets the same result everywhere. For each frame, in order:

1. stamp guard: a frame older than the previous one is refused (out of order), or, when
   the clock went back more than ``TIME_JUMP_BACK_S`` (bag looped, sim restarted), the
   sensor buffers are cleared first;
2. the image itself (decode errors, degenerate sizes: a counted bad image);
3. intrinsics for a forward camera of a panorama model: the CameraInfo matched by stamp;
4. the prior: the caller's, else the drive tracker's estimate once it has settled (when the
   pipeline has one), else the latest valid GNSS fix at or before the stamp
   (``runtime.gnss``); a tracker without either (a kidnapped start, ``relocalize``)
   searches the whole index;
5. the camera mount (``/tf_static`` chain to the image's frame, else the parameters);
6. :meth:`Localizer.localize`, then camera -> base_link through the mount;
7. map -> odom from odometry interpolated at the image stamp, when odometry is buffered;
8. with a tracker: the frame's hypotheses (every decoded tile's best pose) weigh it.

The result is one :class:`~ciper_ros.metrics.frames.FrameRecord` (the frame's own pose;
:meth:`FramePipeline.tracked_at` gives the tracker's). Odometry and fixes reach the
tracker through :meth:`FramePipeline.add_odometry` and :meth:`FramePipeline.add_fix`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.geo.se2 import SE2
from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.rosmsg.convert import MessageError, to_rgb
from ciper_ros.runtime.gnss import FixBuffer, FixPolicy
from ciper_ros.runtime.localizer import Localizer, Prior
from ciper_ros.runtime.mount import base_from_camera, Mount
from ciper_ros.runtime.sensors import CameraInfoBuffer, OdometryBuffer, StaticTransforms
from ciper_ros.runtime.stamped import TIME_JUMP_BACK_S
from ciper_ros.runtime.tracker import DriveTracker, TrackEstimate

if TYPE_CHECKING:
    from ciper_ros.runtime.debug_view import DebugScene


def set_prior(rec: FrameRecord, prior: Prior, plane) -> None:
    """Record the prior a frame was localized with (its centre in ``plane``'s ENU frame)."""
    rec.prior_sigma_m = prior.sigma_m
    rec.prior_latlon_deg = (prior.lat_deg, prior.lon_deg)
    rec.prior_x_m, rec.prior_y_m = (float(v) for v in plane.xy_m_from_latlon(
        np.array([[prior.lat_deg, prior.lon_deg]]))[0])


@dataclass(frozen=True)
class PipelineConfig:
    """What the per-frame path needs besides the Localizer (the node's parameters imply it)."""

    fix_policy: FixPolicy = field(default_factory=FixPolicy)
    base_frame: str = 'base_link'
    mount: Mount = field(default_factory=Mount)      # when /tf_static does not reach the camera
    camera_info_tolerance_s: float = 0.02
    odom_max_gap_s: float = 0.5
    odom_tolerance_s: float = 0.05


@dataclass
class View:
    """One camera's image of a rig frame (see :attr:`Frame.views`).

    ``mount``: base_link -> this camera; None to take it from ``/tf_static`` by
    ``frame_id`` (or the pipeline's default mount).
    """

    image: np.ndarray                 # (camera.height, camera.width, 3) uint8 RGB
    camera: PinholeCamera
    frame_id: str = ''
    mount: Mount | None = None


@dataclass
class Frame:
    """One camera frame as it enters the pipeline.

    ``image``: (H, W, 3) uint8 RGB, or None with ``error`` (a message that did not decode).
    ``prior`` / ``camera``: given by the caller (an image folder with ``--prior``, the
    chained evaluation); None to take them from the GNSS fixes and CameraInfo buffered.
    """

    stamp_ns: int
    image: np.ndarray | None
    frame_id: str = ''
    name: str = ''
    error: str = ''
    prior: Prior | None = None
    views: tuple[View, ...] = ()      # a camera rig: every camera's image (``image`` unused)
    camera: PinholeCamera | None = None


class FramePipeline:
    """The sensor buffers of one camera stream and the per-frame path through the Localizer."""

    def __init__(self, *, localizer: Localizer, config: PipelineConfig = PipelineConfig(),
                 use_gnss: bool = True, tracker: DriveTracker | None = None) -> None:
        """``tracker``: track over the drive (frames, fixes and odometry weigh it)."""
        self.localizer = localizer
        self.config = config
        self.use_gnss = use_gnss
        self.tracker = tracker
        self.fixes = FixBuffer(config.fix_policy)
        self.camera_infos = CameraInfoBuffer(tolerance_s=config.camera_info_tolerance_s)
        self.odometry = OdometryBuffer(max_gap_s=config.odom_max_gap_s,
                                       tolerance_s=config.odom_tolerance_s)
        self.tf_static = StaticTransforms(base_frame=config.base_frame, default=config.mount)
        self.last_stamp_ns: int | None = None
        self.time_jumps = 0
        self.bad_images = 0

    # ------------------------------------------------------------------ inputs
    def add_fix(self, stamp_ns: int, msg) -> str | None:
        """Buffer a NavSatFix (and weigh the tracker by it); the reason it was refused."""
        why = self.fixes.add(stamp_ns, msg)
        if why is None and self.tracker is not None and self.use_gnss:
            fix = self.fixes.last_added
            xy = self.localizer.index.plane.xy_m_from_latlon(
                np.array([[fix.lat_deg, fix.lon_deg]]))[0]
            self.tracker.add_fix(stamp_ns, xy, fix.sigma_m)
        return why

    def add_camera_info(self, stamp_ns: int, msg) -> str | None:
        """Buffer a CameraInfo; the reason it was refused, or None."""
        from ciper_ros.rosmsg.convert import camera_info_to_camera

        try:
            self.camera_infos.add(stamp_ns, camera_info_to_camera(msg))
        except MessageError as e:
            return str(e)
        return None

    def add_odometry(self, stamp_ns: int, x_m: float, y_m: float,
                     yaw_rad: float) -> TrackEstimate | None:
        """Buffer an odometry pose (odom frame); the tracker's estimate after it, if any."""
        if not all(math.isfinite(v) for v in (x_m, y_m, yaw_rad)):
            return None
        self.odometry.add(stamp_ns, SE2(x_m, y_m, yaw_rad, parent='odom', child='base_link'))
        if self.tracker is None:
            return None
        return self.tracker.add_odometry(stamp_ns, x_m, y_m, yaw_rad)

    def tracked_at(self, stamp_ns: int) -> TrackEstimate | None:
        """Give the tracker's estimate at ``stamp_ns`` (None: no tracker, or not started)."""
        return None if self.tracker is None else self.tracker.estimate_at(stamp_ns)

    def add_static_transforms(self, edges) -> None:
        self.tf_static.add(edges)

    def needs_camera(self, image: np.ndarray) -> bool:
        return self.localizer.needs_camera(image)

    def decode(self, msg, msgtype: str | None = None) -> np.ndarray:
        """RGB of an Image / CompressedImage message; MessageError says what is wrong."""
        try:
            return to_rgb(msg, msgtype)
        except MessageError:
            raise
        except Exception as e:       # anything a malformed message trips inside OpenCV/numpy
            raise MessageError(f'image message cannot be read: {e}') from None

    # ------------------------------------------------------------------ the frame
    def process(self, frame: Frame) -> FrameRecord:
        """Localize one frame; never raises for bad data (the record says why)."""
        t0 = time.perf_counter()
        stamp = int(frame.stamp_ns)
        rec = FrameRecord(stamp_ns=stamp, name=frame.name or str(stamp))
        if self.last_stamp_ns is not None and stamp < self.last_stamp_ns:
            back_s = (self.last_stamp_ns - stamp) * 1e-9
            if back_s <= TIME_JUMP_BACK_S:
                rec.reason = (f'image stamp {back_s:.3f} s older than the previous frame '
                              '(out of order)')
                return rec
            self.reset_history()               # the clock went back: history is void
            self.time_jumps += 1
        self.last_stamp_ns = stamp
        image, camera, mount = frame.image, frame.camera, None
        if frame.views:
            image, mount, why = self._rig_input(frame.views)
            if image is None:
                rec.reason = why
                return rec
            camera = None
        elif image is None:
            self.bad_images += 1
            rec.reason = frame.error or 'bad image'
            return rec
        if camera is None and self.localizer.needs_camera(image):
            h, w = image.shape[:2]
            camera, why = self.camera_infos.at(stamp)
            if camera is None:
                rec.reason = f'a {w}x{h} forward camera image needs its intrinsics: {why}'
                return rec
            if (camera.width, camera.height) != (w, h):
                rec.reason = f'CameraInfo is {camera.width}x{camera.height}, the image {w}x{h}'
                return rec
        plane = self.localizer.index.plane
        prior, why = frame.prior, 'no prior'
        rec.prior_source = 'given' if prior is not None else ''
        if prior is None and self.tracker is not None:
            prior = self._tracker_prior(stamp)
            rec.prior_source = 'tracker' if prior is not None else ''
        searching = self.tracker is not None and self.tracker.searching
        if prior is None and self.use_gnss and not searching:
            prior, why, rec.fix_age_s = self.fixes.prior_at(stamp)
            rec.prior_source = 'gnss' if prior is not None else ''
        if prior is None and self.use_gnss and self.tracker is None:
            rec.reason = why
            return rec
        if prior is not None:
            set_prior(rec, prior, plane)
        mount = mount or self.tf_static.mount(frame.frame_id)
        rec.mount_source = mount.source
        try:
            res = self.localizer.localize(image, prior, camera=camera)
        except ValueError as e:               # wrong image size / camera for the model
            rec.reason = str(e)
            return rec
        rec.timings_ms = dict(res.timings_ms)
        rec.candidates = len(res.candidates)
        rec.candidate_tiles = tuple(int(c) for c in res.candidates)
        rec.score, rec.tile_id, rec.reason = float(res.score), int(res.tile_id), res.reason
        rec.match_prob = float(res.match_prob)
        rec.hypotheses = tuple((*base_from_camera(h.xy_m, h.yaw_rad, h.covariance, mount),
                                h.weight) for h in res.hypotheses)
        if math.isfinite(res.yaw_rad):
            rec.camera_xy_yaw = (float(res.xy_m[0]), float(res.xy_m[1]), float(res.yaw_rad))
            rec.camera_covariance = np.asarray(res.covariance, np.float64)
            xy, yaw, cov = base_from_camera(res.xy_m, res.yaw_rad, res.covariance, mount)
            lat, lon = plane.latlon_from_xy_m(xy[None])[0]
            rec.x_m, rec.y_m, rec.yaw_rad, rec.covariance = float(xy[0]), float(xy[1]), yaw, cov
            rec.lat_deg, rec.lon_deg = float(lat), float(lon)
            T_odom_base = self.odometry.at(stamp)
            if T_odom_base is not None:
                T_map_odom = SE2(rec.x_m, rec.y_m, yaw, parent='map',
                                 child='base_link') @ T_odom_base.inv()
                rec.map_to_odom = (T_map_odom.x_m, T_map_odom.y_m, T_map_odom.yaw_rad)
        rec.ok = bool(res.ok) and math.isfinite(rec.yaw_rad)
        if self.tracker is not None and rec.hypotheses:
            t1 = time.perf_counter()
            self.tracker.add_frame(stamp, rec.hypotheses, rec.match_prob)
            rec.timings_ms['tracker'] = 1e3 * (time.perf_counter() - t1)
        rec.timings_ms['pipeline'] = 1e3 * (time.perf_counter() - t0)
        return rec

    def _rig_input(self, views) -> tuple[np.ndarray | None, Mount | None, str]:
        """(panorama, the rig centre's mount, '') of a rig frame, or (None, None, why).

        Each camera's mount comes with its view or from ``/tf_static``; the panorama faces
        base_link's heading and is seen from the cameras' mean position (the rig's centre).
        """
        from ciper_ros.geo.camera import RigCamera
        from ciper_ros.geo.reproject import rig_to_panorama

        if self.localizer.model.config.ground != 'panorama':
            return None, None, 'a camera rig needs a panorama model'
        rig = []
        for i, v in enumerate(views):
            if v.image is None or v.camera is None:
                return None, None, f'rig camera {i} ({v.frame_id or "?"}) has no image / ' \
                                   'intrinsics'
            m = v.mount
            if m is None:
                m = self.tf_static.mount(v.frame_id)
                if not m.source.startswith('tf_static'):
                    return None, None, (f'no /tf_static {self.config.base_frame} -> '
                                        f'{v.frame_id or "?"}: each camera of a rig needs '
                                        'its mount')
            rig.append(RigCamera(camera=v.camera, yaw_rad=m.yaw_rad, x_m=m.x_m, y_m=m.y_m,
                                 name=v.frame_id))
        h, w = self.localizer.ground_hw
        try:
            pano, _, _ = rig_to_panorama([v.image for v in views], rig, width=w, height=h)
        except ValueError as e:
            return None, None, str(e)
        x = float(np.mean([r.x_m for r in rig]))
        y = float(np.mean([r.y_m for r in rig]))
        return pano, Mount(x, y, 0.0, source=f'rig of {len(rig)} cameras'), ''

    def debug_scene(self, rec: FrameRecord, *, max_particles: int = 500) -> DebugScene:
        """Give what the frame found and the tracker holds at its stamp (the debug view)."""
        from ciper_ros.runtime.debug_view import DebugScene, PlanarEstimate

        stamp = int(rec.stamp_ns)
        frame = tracked = particles = None
        if math.isfinite(rec.yaw_rad):
            frame = PlanarEstimate(xy_m=rec.xy_m, yaw_rad=rec.yaw_rad,
                                   covariance=rec.covariance)
        status = f'{rec.prior_source or "no"} prior'
        if math.isfinite(rec.match_prob):
            status += f', match {rec.match_prob:.2f}'
        if not rec.ok:
            status += f', rejected: {rec.reason}'
        if self.tracker is not None:
            est = self.tracker.estimate_at(stamp)
            if est is not None:
                tracked = PlanarEstimate(xy_m=est.xy_m, yaw_rad=est.yaw_rad,
                                         covariance=est.covariance)
            particles = self.tracker.particles_at(stamp, max_n=max_particles)
            status += f', tracker {self.tracker.status()["tracker"]}'
        fix_xy, fix_sigma = None, math.nan
        prior, _, _ = self.fixes.prior_at(stamp)
        if prior is not None:
            fix_xy = self.localizer.index.plane.xy_m_from_latlon(
                np.array([[prior.lat_deg, prior.lon_deg]]))[0]
            fix_sigma = float(prior.sigma_m)
        return DebugScene(stamp_ns=stamp, tracked=tracked, frame=frame,
                          hypotheses=rec.hypotheses, particles=particles, fix_xy_m=fix_xy,
                          fix_sigma_m=fix_sigma, status=status)

    def _tracker_prior(self, stamp_ns: int) -> Prior | None:
        got = self.tracker.prior_at(stamp_ns)
        if got is None:
            return None
        xy, sigma, yaw, yaw_sigma = got
        lat, lon = self.localizer.index.plane.latlon_from_xy_m(np.asarray(xy)[None])[0]
        return Prior(float(lat), float(lon), sigma_m=float(sigma), yaw_rad=float(yaw),
                     yaw_sigma_rad=float(yaw_sigma))

    def reset_history(self) -> None:
        """Forget buffered fixes, CameraInfo, odometry and the track (the clock went back)."""
        self.fixes.clear()
        self.camera_infos.clear()
        self.odometry.clear()
        if self.tracker is not None:
            self.tracker.reset()
