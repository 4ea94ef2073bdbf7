"""One camera frame -> a base_link pose: the node's work, without rclpy.

The node and ``ciper bag eval`` (offline) both call :meth:`FramePipeline.process`, so a bag
replayed through the live node and the same bag evaluated offline go through identical
code: decode, the prior (chosen by :class:`~ciper_ros.runtime.gnss.FixBuffer` in both), the
Localizer, camera -> base_link through the mount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import time

import numpy as np

from ciper_ros.rosmsg.convert import MessageError, to_rgb
from ciper_ros.runtime.localizer import LocalizationResult, Localizer, Prior
from ciper_ros.runtime.mount import base_from_camera, Mount


@dataclass
class FrameOutput:
    """What one frame produced. Poses are base_link in the map (index ENU) frame."""

    stamp_ns: int
    ok: bool
    reason: str = ''
    xy_m: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    yaw_rad: float = math.nan
    covariance: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))
    lat_deg: float = math.nan
    lon_deg: float = math.nan
    prior_sigma_m: float = math.nan
    prior_latlon_deg: tuple[float, float] | None = None
    fix_age_s: float = math.nan
    score: float = math.nan
    candidates: int = 0
    timings_ms: dict = field(default_factory=dict)
    camera: LocalizationResult | None = None

    def row(self) -> dict:
        c = self.covariance
        return {'stamp_ns': self.stamp_ns, 'ok': self.ok, 'reason': self.reason,
                'x_m': float(self.xy_m[0]), 'y_m': float(self.xy_m[1]),
                'yaw_rad': self.yaw_rad, 'lat_deg': self.lat_deg, 'lon_deg': self.lon_deg,
                'sigma_x_m': math.sqrt(max(c[0, 0], 0)) if np.isfinite(c[0, 0]) else math.nan,
                'sigma_y_m': math.sqrt(max(c[1, 1], 0)) if np.isfinite(c[1, 1]) else math.nan,
                'sigma_yaw_rad': math.sqrt(max(c[2, 2], 0))
                if np.isfinite(c[2, 2]) else math.nan,
                'prior_sigma_m': self.prior_sigma_m, 'fix_age_s': self.fix_age_s,
                'score': self.score, 'candidates': self.candidates,
                'total_ms': self.timings_ms.get('total', math.nan)}


class FramePipeline:
    def __init__(self, *, localizer: Localizer) -> None:
        self.localizer = localizer

    def decode(self, msg, msgtype: str | None = None) -> np.ndarray:
        """RGB of an Image / CompressedImage message; MessageError says what is wrong."""
        try:
            return to_rgb(msg, msgtype)
        except MessageError:
            raise
        except Exception as e:       # anything a malformed message trips inside OpenCV/numpy
            raise MessageError(f'image message cannot be read: {e}') from None

    def process(self, rgb: np.ndarray, stamp_ns: int, mount: Mount, prior: Prior | None, *,
                prior_reason: str = 'no GNSS prior', fix_age_s: float = math.nan,
                camera=None) -> FrameOutput:
        """Localize one decoded frame; never raises for bad data (the reason is returned).

        ``prior``, ``prior_reason``, ``fix_age_s``: what ``FixBuffer.prior_at`` returned.
        ``camera``: intrinsics of a forward camera's image (resampled for a panorama model).
        """
        t0 = time.perf_counter()
        out = FrameOutput(stamp_ns=stamp_ns, ok=False, fix_age_s=fix_age_s)
        if prior is None:
            out.reason = prior_reason
            return out
        out.prior_sigma_m = prior.sigma_m
        out.prior_latlon_deg = (prior.lat_deg, prior.lon_deg)
        try:
            res = self.localizer.localize(rgb, prior, camera=camera)
        except ValueError as e:               # wrong image size / camera for the model
            out.reason = str(e)
            return out
        out.camera = res
        out.timings_ms = dict(res.timings_ms)
        out.candidates = len(res.candidates)
        out.score = res.score
        out.reason = res.reason
        if math.isfinite(res.yaw_rad):
            xy, yaw, cov = base_from_camera(res.xy_m, res.yaw_rad, res.covariance, mount)
            lat, lon = self.localizer.index.plane.latlon_from_xy_m(xy[None])[0]
            out.xy_m, out.yaw_rad, out.covariance = xy, yaw, cov
            out.lat_deg, out.lon_deg = float(lat), float(lon)
        out.ok = bool(res.ok) and math.isfinite(out.yaw_rad)
        out.timings_ms['pipeline'] = 1e3 * (time.perf_counter() - t0)
        return out
