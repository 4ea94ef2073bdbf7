"""What the localizer and the tracker believe at one frame, drawn on the map.

ROS-free. :class:`DebugScene` holds one frame's state in the map frame (base_link poses):
the tracked estimate, the frame's own result, every decoded tile's hypothesis, the
particles and the GNSS fix, all at the image stamp. :func:`render_debug_image` draws it on
a north-up aerial crop around the scene's centre (the node's ``~/debug/image``);
:func:`ellipse_xy_m` gives a covariance's 95 % ellipse as a closed polyline (drawn here and
sent as markers by the node).

Colours (RGB): tracked green, frame magenta, hypotheses cyan (brighter: more weight),
particles yellow, GNSS red.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

CHI2_2_95 = 5.991                    # chi-square, 2 degrees of freedom, 95 %
COLOURS = {'tracked': (40, 220, 60), 'frame': (230, 40, 230), 'hypothesis': (0, 220, 255),
           'particle': (255, 220, 0), 'gnss': (255, 40, 40), 'text': (255, 255, 255)}
NO_MAP_RGB = (70, 70, 70)


@dataclass(frozen=True, kw_only=True)
class PlanarEstimate:
    """A base_link pose in the map frame with its (x, y, yaw) 3x3 covariance (or None)."""

    xy_m: np.ndarray                  # (2,)
    yaw_rad: float
    covariance: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class DebugScene:
    """One frame's estimates in the map frame, at the image stamp."""

    stamp_ns: int
    tracked: PlanarEstimate | None = None
    frame: PlanarEstimate | None = None
    hypotheses: tuple = ()            # (xy_m (2,), yaw_rad, covariance (3, 3), weight)
    particles: np.ndarray | None = None      # (N, 3) x_m, y_m, yaw_rad
    fix_xy_m: np.ndarray | None = None       # (2,)
    fix_sigma_m: float = math.nan
    status: str = ''

    def center_xy_m(self) -> np.ndarray | None:
        """Give where the view is centred: the tracked pose, else the frame's, else the fix."""
        for est in (self.tracked, self.frame):
            if est is not None and np.all(np.isfinite(est.xy_m)):
                return np.asarray(est.xy_m, np.float64)
        if self.fix_xy_m is not None and np.all(np.isfinite(self.fix_xy_m)):
            return np.asarray(self.fix_xy_m, np.float64)
        if self.particles is not None and len(self.particles):
            return self.particles[:, :2].mean(axis=0)
        if self.hypotheses:
            return np.asarray(self.hypotheses[0][0], np.float64)
        return None


def ellipse_xy_m(xy_m, covariance_xy, *, chi2: float = CHI2_2_95,
                 points: int = 36) -> np.ndarray:
    """Give the ellipse ``d^T C^-1 d = chi2`` around ``xy_m`` as (points + 1, 2), closed.

    ``covariance_xy``: the (2, 2) position block; a degenerate one gives a point.
    """
    c = np.asarray(covariance_xy, np.float64)[:2, :2]
    vals, vecs = np.linalg.eigh(0.5 * (c + c.T))
    radii = np.sqrt(np.clip(vals, 0.0, None) * chi2)
    t = np.linspace(0.0, 2 * math.pi, points + 1)
    unit = np.stack([np.cos(t), np.sin(t)], axis=1)
    return np.asarray(xy_m, np.float64)[None] + (unit * radii) @ vecs.T


class _Canvas:
    """Map metres (ENU, around ``center``) to the pixels of a north-up image."""

    def __init__(self, image: np.ndarray, center_xy_m: np.ndarray, side_m: float) -> None:
        self.image = image
        self.px = image.shape[0]
        self.m_per_px = side_m / self.px
        self.center = np.asarray(center_xy_m, np.float64)

    def uv(self, xy_m) -> np.ndarray:
        """(..., 2) map metres -> (..., 2) pixel (u right = east, v down = south)."""
        d = (np.asarray(xy_m, np.float64) - self.center) / self.m_per_px
        return np.stack([self.px / 2 + d[..., 0], self.px / 2 - d[..., 1]], axis=-1)

    def _pt(self, xy_m) -> tuple[int, int]:
        u, v = self.uv(xy_m)
        big = 10 * self.px                     # cv2 needs int32 coordinates
        return int(round(np.clip(u, -big, big))), int(round(np.clip(v, -big, big)))

    def polyline(self, xy_m: np.ndarray, colour, thickness: int = 1) -> None:
        import cv2

        pts = np.clip(np.round(self.uv(xy_m)), -10 * self.px, 10 * self.px).astype(np.int32)
        cv2.polylines(self.image, [pts.reshape(-1, 1, 2)], False, colour, thickness,
                      cv2.LINE_AA)

    def arrow(self, xy_m, yaw_rad: float, length_m: float, colour, thickness: int = 2) -> None:
        import cv2

        tip = np.asarray(xy_m, np.float64) + length_m * np.array([math.cos(yaw_rad),
                                                                  math.sin(yaw_rad)])
        cv2.arrowedLine(self.image, self._pt(xy_m), self._pt(tip), colour, thickness,
                        cv2.LINE_AA, tipLength=0.3)

    def dots(self, xy_m: np.ndarray, colour) -> None:
        uv = np.round(self.uv(xy_m)).astype(np.int64)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < self.px) & (uv[:, 1] >= 0) & (uv[:, 1] < self.px)
        self.image[uv[inside, 1], uv[inside, 0]] = colour

    def cross(self, xy_m, colour, size_px: int = 6) -> None:
        import cv2

        u, v = self._pt(xy_m)
        cv2.line(self.image, (u - size_px, v - size_px), (u + size_px, v + size_px), colour, 2)
        cv2.line(self.image, (u - size_px, v + size_px), (u + size_px, v - size_px), colour, 2)

    def text(self, line: str, row: int, colour=COLOURS['text']) -> None:
        import cv2

        org = (6, 16 + 16 * row) if row >= 0 else (6, self.px - 8 + 16 * (row + 1))
        cv2.putText(self.image, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(self.image, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1,
                    cv2.LINE_AA)


def render_debug_image(scene: DebugScene, *, store, plane, side_m: float = 80.0,
                       px: int = 512, zoom: int | None = None) -> np.ndarray:
    """Draw ``scene`` on the aerial crop of ``store`` around its centre: (px, px, 3) RGB uint8.

    ``plane``: the map frame (ENU at the index datum). Outside the map, or with nothing to
    centre on, the background is grey and says so; this never raises for map coverage.
    """
    from ciper_ros.maps.errors import MapStoreError

    center = scene.center_xy_m()
    note = ''
    image = None
    if center is None:
        center, note = np.zeros(2), 'nothing to show yet (no pose, fix or particles)'
    else:
        lat, lon = plane.latlon_from_xy_m(center[None])[0]
        try:
            image = store.crop((float(lat), float(lon)), side_m, px, zoom=zoom,
                               missing='fill', fill_rgb=NO_MAP_RGB).image_rgb
        except MapStoreError:
            note = 'outside the map'
    if image is None:
        image = np.empty((px, px, 3), np.uint8)
        image[:] = NO_MAP_RGB
    canvas = _Canvas(np.ascontiguousarray(image, np.uint8), center, side_m)
    arrow_m = max(side_m / 16, 1.0)
    if scene.particles is not None and len(scene.particles):
        canvas.dots(scene.particles[:, :2], COLOURS['particle'])
    if scene.fix_xy_m is not None and np.all(np.isfinite(scene.fix_xy_m)):
        canvas.cross(scene.fix_xy_m, COLOURS['gnss'])
        if math.isfinite(scene.fix_sigma_m):
            canvas.polyline(ellipse_xy_m(scene.fix_xy_m, np.eye(2) * scene.fix_sigma_m ** 2),
                            COLOURS['gnss'])
    weights = [float(h[3]) for h in scene.hypotheses] or [1.0]
    top = max(max(weights), 1e-9)
    for xy, yaw, _cov, w in reversed(scene.hypotheses):       # the best drawn last, on top
        k = 0.35 + 0.65 * float(w) / top
        colour = tuple(int(c * k) for c in COLOURS['hypothesis'])
        canvas.arrow(xy, float(yaw), arrow_m * (0.5 + 0.5 * k), colour, 1)
    for name, est in (('frame', scene.frame), ('tracked', scene.tracked)):
        if est is None or not np.all(np.isfinite(est.xy_m)):
            continue
        if est.covariance is not None and np.all(np.isfinite(est.covariance)):
            canvas.polyline(ellipse_xy_m(est.xy_m, est.covariance), COLOURS[name], 2)
        canvas.arrow(est.xy_m, est.yaw_rad, arrow_m * 1.5, COLOURS[name], 2)
    canvas.text(f't {scene.stamp_ns * 1e-9:.2f} s', 0)
    for i, (label, key) in enumerate((('tracked', 'tracked'), ('frame', 'frame'),
                                      ('hypotheses', 'hypothesis'),
                                      ('particles', 'particle'), ('GNSS', 'gnss'))):
        canvas.text(label, i + 1, COLOURS[key])
    bar_px = int(round(10.0 / canvas.m_per_px))
    y = px - 24
    import cv2

    cv2.line(canvas.image, (px - 10 - bar_px, y), (px - 10, y), COLOURS['text'], 2)
    cv2.putText(canvas.image, '10 m', (px - 10 - bar_px, y - 6), cv2.FONT_HERSHEY_SIMPLEX,
                0.42, COLOURS['text'], 1, cv2.LINE_AA)
    lines = [line for line in (scene.status, note) if line]
    for i, line in enumerate(reversed(lines)):
        canvas.text(line, -1 - i)
    return canvas.image
