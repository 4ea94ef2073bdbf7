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


@dataclass(frozen=True, kw_only=True)
class RigCamera:
    """One camera of a rig: intrinsics and its level mount on the vehicle.

    ``yaw_rad``: the optical axis' heading relative to the rig's reference (base_link's x
    axis), counter-clockwise (ENU: left is positive); ``x_m`` / ``y_m``: where it sits on
    the vehicle (base_link frame).
    """

    camera: PinholeCamera
    yaw_rad: float = 0.0
    x_m: float = 0.0
    y_m: float = 0.0
    name: str = ''

    def pose_in_map(self, x_m: float, y_m: float, yaw_rad: float) -> tuple[float, float, float]:
        """Give this camera's (x, y, yaw) in the map for base_link at (x, y, yaw)."""
        from ciper_ros.geo.se2 import SE2

        T = SE2(x_m, y_m, yaw_rad) @ SE2(self.x_m, self.y_m, self.yaw_rad)
        return T.x_m, T.y_m, T.yaw_rad


def _ring(n: int, hfov_deg: float, *, width: int, height: int, radius_m: float,
          names: tuple[str, ...]) -> tuple[RigCamera, ...]:
    cam = PinholeCamera.from_hfov(width, height, hfov_deg)
    out = []
    for i, name in enumerate(names[:n]):
        yaw = 2 * math.pi * i / n
        out.append(RigCamera(camera=cam, yaw_rad=math.remainder(yaw, 2 * math.pi),
                             x_m=radius_m * math.cos(yaw), y_m=radius_m * math.sin(yaw),
                             name=name))
    return tuple(out)


RIG_PRESETS = ('forward', 'front_rear', 'surround4', 'surround6')


def rig_preset(name: str, *, width: int = 256, height: int = 144) -> tuple[RigCamera, ...]:
    """Camera rigs the synthetic drives record and the evaluations use.

    ``forward``: one 90-degree camera; ``front_rear``: two 90-degree cameras looking ahead
    and back; ``surround4``: four 100-degree cameras at 90-degree steps (overlapping, as
    parking / surround-view rigs do); ``surround6``: six 70-degree cameras. Cameras sit on
    a ring of 1 m radius around base_link (the rig's centre is base_link).
    """
    if name == 'forward':
        return (RigCamera(camera=PinholeCamera.from_hfov(width, height, 90.0), name='front'),)
    if name == 'front_rear':
        return _ring(2, 90.0, width=width, height=height, radius_m=1.0,
                     names=('front', 'rear'))
    if name == 'surround4':
        return _ring(4, 100.0, width=width, height=height, radius_m=1.0,
                     names=('front', 'left', 'rear', 'right'))
    if name == 'surround6':
        return _ring(6, 70.0, width=width, height=height, radius_m=1.0,
                     names=('front', 'front_left', 'rear_left', 'rear', 'rear_right',
                            'front_right'))
    raise UserError(f'unknown camera rig {name!r}; choose from {", ".join(RIG_PRESETS)}')
