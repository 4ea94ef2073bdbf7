"""Camera intrinsics (OpenCV / ROS CameraInfo convention: pixel centres at integers)."""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics. Optical frame: x right, y down, z forward (REP-103 ``_optical``)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if int(self.width) != self.width or int(self.height) != self.height \
                or self.width < 1 or self.height < 1:
            raise UserError(f'camera size must be positive integers, got '
                             f'{self.width}x{self.height}')
        for name in ('fx', 'fy', 'cx', 'cy'):
            if not math.isfinite(getattr(self, name)):
                raise UserError(f'camera {name} must be finite, got {getattr(self, name)}')
        if self.fx <= 0 or self.fy <= 0:
            raise UserError(f'focal lengths must be positive, got fx={self.fx} fy={self.fy}')

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> PinholeCamera:
        """Square pixels, principal point at the image centre."""
        if not 1.0 <= hfov_deg < 179.0:
            raise UserError(f'horizontal FoV must be in [1, 179) degrees, got {hfov_deg}')
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> PinholeCamera:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        return cls(width, height, K[0, 0], K[1, 1], K[0, 2], K[1, 2])

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def hfov_rad(self) -> float:
        return math.atan((self.width - 1 - self.cx + 0.5) / self.fx) + \
            math.atan((self.cx + 0.5) / self.fx)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame -> (N, 2) pixels (u, v); NaN behind the camera."""
        p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        z = np.where(p[:, 2] > 1e-9, p[:, 2], np.nan)
        return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], -1)

    def scaled(self, factor: float) -> PinholeCamera:
        """Return this camera for the image resized by ``factor``."""
        w, h = round(self.width * factor), round(self.height * factor)
        return PinholeCamera(w, h, self.fx * factor, self.fy * factor,
                             (self.cx + 0.5) * factor - 0.5, (self.cy + 0.5) * factor - 0.5)

    def to_dict(self) -> dict:
        return {'width': self.width, 'height': self.height, 'fx': self.fx, 'fy': self.fy,
                'cx': self.cx, 'cy': self.cy}

    @classmethod
    def from_dict(cls, d: dict) -> PinholeCamera:
        return cls(int(d['width']), int(d['height']), float(d['fx']), float(d['fy']),
                   float(d['cx']), float(d['cy']))
