"""SE(2) rigid transforms with explicit frames.

``T_a_b = SE2(x_m, y_m, yaw_rad, parent='a', child='b')`` maps points expressed in frame
``b`` into frame ``a``: ``p_a = T_a_b.apply(p_b)``; (x_m, y_m) is b's origin in a and
``yaw_rad`` b's x axis measured counter-clockwise from a's x axis (REP-103).
Composition checks frames when both sides name them: ``T_a_b @ T_b_c -> T_a_c``.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.geo.heading import wrap_angle_rad


@dataclass(frozen=True)
class SE2:
    x_m: float
    y_m: float
    yaw_rad: float
    parent: str | None = None
    child: str | None = None

    def __post_init__(self) -> None:
        for name in ('x_m', 'y_m', 'yaw_rad'):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f'SE2.{name} must be finite, got {value}')
        object.__setattr__(self, 'x_m', float(self.x_m))
        object.__setattr__(self, 'y_m', float(self.y_m))
        object.__setattr__(self, 'yaw_rad', float(wrap_angle_rad(self.yaw_rad)))

    @classmethod
    def identity(cls, frame: str | None = None) -> SE2:
        return cls(0.0, 0.0, 0.0, parent=frame, child=frame)

    @classmethod
    def from_matrix(cls, T: np.ndarray, *, parent: str | None = None,
                    child: str | None = None) -> SE2:
        """Build from a 3x3 homogeneous matrix."""
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (3, 3):
            raise ValueError(f'expected a 3x3 matrix, got shape {T.shape}')
        return cls(T[0, 2], T[1, 2], math.atan2(T[1, 0], T[0, 0]), parent=parent, child=child)

    def matrix(self) -> np.ndarray:
        """3x3 homogeneous matrix."""
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return np.array([[c, -s, self.x_m], [s, c, self.y_m], [0.0, 0.0, 1.0]])

    @property
    def xy_m(self) -> np.ndarray:
        return np.array([self.x_m, self.y_m])

    def inv(self) -> SE2:
        """T_a_b -> T_b_a."""
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        x = -(c * self.x_m + s * self.y_m)
        y = -(-s * self.x_m + c * self.y_m)
        return SE2(x, y, -self.yaw_rad, parent=self.child, child=self.parent)

    def compose(self, other: SE2) -> SE2:
        """T_a_b.compose(T_b_c) -> T_a_c."""
        if self.child is not None and other.parent is not None and self.child != other.parent:
            raise ValueError(
                f'cannot compose T_{self.parent}_{self.child} with '
                f'T_{other.parent}_{other.child}: frame {self.child!r} != {other.parent!r}')
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return SE2(self.x_m + c * other.x_m - s * other.y_m,
                   self.y_m + s * other.x_m + c * other.y_m,
                   self.yaw_rad + other.yaw_rad,
                   parent=self.parent, child=other.child)

    def __matmul__(self, other: SE2) -> SE2:
        if not isinstance(other, SE2):
            return NotImplemented
        return self.compose(other)

    def apply(self, points_xy: np.ndarray) -> np.ndarray:
        """Map points (..., 2) from the child frame into the parent frame."""
        p = np.asarray(points_xy, dtype=np.float64)
        if p.shape[-1] != 2:
            raise ValueError(f'points must have shape (..., 2), got {p.shape}')
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        x = c * p[..., 0] - s * p[..., 1] + self.x_m
        y = s * p[..., 0] + c * p[..., 1] + self.y_m
        return np.stack([x, y], axis=-1)

    def distance_to(self, other: SE2) -> tuple[float, float]:
        """(position distance in m, absolute heading difference in rad) to another pose."""
        d_xy = math.hypot(self.x_m - other.x_m, self.y_m - other.y_m)
        d_yaw = abs(float(wrap_angle_rad(self.yaw_rad - other.yaw_rad)))
        return d_xy, d_yaw

    def __repr__(self) -> str:
        frames = '' if self.parent is None and self.child is None else \
            f', {self.parent}->{self.child}'
        return (f'SE2(x_m={self.x_m:.4f}, y_m={self.y_m:.4f}, '
                f'yaw_rad={self.yaw_rad:.6f}{frames})')
