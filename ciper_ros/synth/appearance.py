"""How the city looks: surface colours, textures, sun and shadows, camera colour response.

Aerial and ground images share only geometry and the painted ground (markings, asphalt
texture): roofs are only seen from above and facades only from the street, with colours
drawn independently; every capture has its own sun, shadows and colour response.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import cv2
import numpy as np

from ciper_ros.synth.world import Kind, World

# base colour of each surface kind (RGB, 0-255), indexed by Kind
GROUND_RGB = np.zeros((16, 3), np.float32)
GROUND_RGB[Kind.OUT] = (90, 130, 65)
GROUND_RGB[Kind.ROAD] = (72, 72, 76)
GROUND_RGB[Kind.LANE_MARK] = (228, 228, 222)
GROUND_RGB[Kind.CENTER_MARK] = (225, 185, 45)
GROUND_RGB[Kind.CROSSWALK] = (232, 232, 226)
GROUND_RGB[Kind.SIDEWALK] = (172, 168, 160)
GROUND_RGB[Kind.GRASS] = (88, 132, 62)
GROUND_RGB[Kind.PLAZA] = (182, 170, 150)
GROUND_RGB[Kind.PARKING] = (84, 84, 88)
GROUND_RGB[Kind.PARKING_MARK] = (225, 225, 220)
GROUND_RGB[Kind.BUILDING] = (128, 128, 128)
GROUND_RGB[Kind.TREE] = (70, 115, 50)


@dataclass(frozen=True)
class Sun:
    """Sun direction: azimuth REP-103 (CCW from east) and elevation above the horizon."""

    azimuth_rad: float
    elevation_rad: float

    @property
    def direction(self) -> np.ndarray:
        """Unit vector towards the sun, ENU."""
        ce = math.cos(self.elevation_rad)
        return np.array([ce * math.cos(self.azimuth_rad), ce * math.sin(self.azimuth_rad),
                         math.sin(self.elevation_rad)])


@dataclass(frozen=True)
class Capture:
    """One capture's conditions: sun, colour response, haze (aerial or a drive)."""

    sun: Sun
    color_matrix: np.ndarray  # (3, 3) applied to linear-ish RGB in [0, 1]
    gamma: float
    ambient: float
    haze_rgb: tuple[float, float, float]

    @classmethod
    def random(cls, rng: np.random.Generator, *, aerial: bool) -> Capture:
        sun = Sun(rng.uniform(-math.pi, math.pi),
                  math.radians(rng.uniform(30, 65) if aerial else rng.uniform(20, 60)))
        m = np.eye(3) * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 0.03, (3, 3))
        return cls(sun=sun, color_matrix=m, gamma=float(rng.uniform(0.85, 1.15)),
                   ambient=float(rng.uniform(0.45, 0.6)),
                   haze_rgb=tuple(rng.uniform(0.0, 0.06, 3)))

    def respond(self, rgb01: np.ndarray) -> np.ndarray:
        """Apply the camera's colour response to (..., 3) RGB in [0, 1]; returns uint8."""
        out = rgb01 @ self.color_matrix.T.astype(np.float32) + np.float32(self.haze_rgb)
        out = np.clip(out, 0.0, 1.0) ** np.float32(self.gamma)
        return (out * 255.0 + 0.5).astype(np.uint8)


class Textures:
    """Tileable value-noise textures in world metres, deterministic per city seed."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x7E47])
        self.fine = self._noise(rng, 32, 256)    # 0.1 m per texel: 25.6 m period
        self.coarse = self._noise(rng, 16, 256)  # 1.0 m per texel: 256 m period
        self.fine_m, self.coarse_m = 0.1, 1.0

    @staticmethod
    def _noise(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
        base = rng.random((cells, cells)).astype(np.float32)
        tiled = np.tile(base, (3, 3))
        big = cv2.resize(tiled, (size * 3, size * 3), interpolation=cv2.INTER_CUBIC)
        return np.clip(big[size:2 * size, size:2 * size], 0.0, 1.0)

    def sample(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fine and coarse noise in [0, 1] at ENU points (nearest texel, wrapping)."""
        n = self.fine.shape[0]  # a power of two: wrap with a bit mask
        m = n - 1
        fx = np.floor(x_m * (1.0 / self.fine_m)).astype(np.int64) & m
        fy = np.floor(y_m * (1.0 / self.fine_m)).astype(np.int64) & m
        cx = np.floor(x_m * (1.0 / self.coarse_m)).astype(np.int64) & m
        cy = np.floor(y_m * (1.0 / self.coarse_m)).astype(np.int64) & m
        return (np.take(self.fine.ravel(), fy * n + fx),
                np.take(self.coarse.ravel(), cy * n + cx))


def ground_rgb01(kind: np.ndarray, x_m: np.ndarray, y_m: np.ndarray,
                 tex: Textures) -> np.ndarray:
    """Painted ground colour (the part both views share), (..., 3) in [0, 1]."""
    fine, coarse = tex.sample(x_m, y_m)
    base = GROUND_RGB[kind] / 255.0
    mod = (0.86 + 0.28 * fine) * (0.9 + 0.2 * coarse)
    out = base * mod[..., None]
    grass = (kind == Kind.GRASS) | (kind == Kind.OUT)
    if np.any(grass):
        # dry and lush patches shift the hue of lawns
        out[grass] += (coarse[grass, None] - 0.5) * np.float32([0.12, 0.06, -0.02])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def shadow_mask(height_m: np.ndarray, res_m: float, sun: Sun, *,
                factor: int = 2) -> np.ndarray:
    """Cast-shadow mask of a height map at ``factor`` times coarser resolution (uint8 0/1).

    Horizon by doubling: after the pass with shift k every pixel holds the highest
    ``H(p + j d) - j step tan(elevation)`` for j < 2k, so ``log2(length)`` full-raster passes
    replace a march of ``length`` steps.
    """
    h = height_m.astype(np.float32)
    if factor > 1:
        n = (h.shape[0] // factor) * factor
        h = h[:n, :n].reshape(n // factor, factor, n // factor, factor).max(axis=(1, 3))
    step = res_m * factor
    tan_el = math.tan(max(sun.elevation_rad, math.radians(5)))
    d_col, d_row = math.cos(sun.azimuth_rad), -math.sin(sun.azimuth_rad)
    max_len_px = float(h.max()) / tan_el / step if h.size else 0.0
    horizon = h.copy()
    k = 1
    while k <= max(max_len_px, 1):
        M = np.float32([[1, 0, k * d_col], [0, 1, k * d_row]])
        shifted = cv2.warpAffine(horizon, M, (h.shape[1], h.shape[0]),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        np.maximum(horizon, shifted - np.float32(k * step * tan_el), out=horizon)
        k *= 2
    return (horizon > h + 0.3).astype(np.uint8)


def hillshade(dz_dx: np.ndarray, dz_dy: np.ndarray, sun: Sun) -> np.ndarray:
    """Lambert factor of a height field's surface normal towards the sun, clipped to [0, 1]."""
    s = sun.direction
    nz = 1.0 / np.sqrt(1.0 + dz_dx ** 2 + dz_dy ** 2)
    return np.clip((-dz_dx * s[0] - dz_dy * s[1] + s[2]) * nz, 0.0, 1.0)


class AerialSampler:
    """ENU sampler for :func:`ciper_ros.maps.write_pyramid`: the orthophoto of a world.

    Top surfaces only (roofs, crowns, car roofs, painted ground) under the capture's sun with
    cast shadows, its colour response and a slight optical blur; JPEG tiles add the
    compression artefacts.
    """

    def __init__(self, world: World, capture: Capture, *, epoch: int = 0,
                 blur_px: float = 0.7) -> None:
        self.world = world
        self.capture = capture
        self.epoch = epoch
        self.blur_px = blur_px
        self.tex = Textures(world.config.seed)
        self.car_layer = world.car_layer(epoch)
        self.car_h = world.car_height_m
        self.car_rgb = world.car_rgb01
        self.shadow_factor = 2
        self.shadow = shadow_mask(world.surface_height_m(epoch), world.res_m, capture.sun,
                                  factor=self.shadow_factor)
        nb = world.n_buildings
        self.roof_rgb = np.concatenate([[[0, 0, 0]], world.buildings.roof_rgb,
                                        world.trees.rgb]).astype(np.float32) / 255.0
        self.n_buildings = nb

    def _height(self, row, col, inside):
        h = self.world.height_m[row, col].astype(np.float32)
        h = np.maximum(h, self.car_h[self.car_layer[row, col]])
        return np.where(inside, h, 0.0)

    def __call__(self, east_m: np.ndarray, north_m: np.ndarray,
                 target_m_per_px: float) -> np.ndarray:
        w = self.world
        pad = 3
        east = np.pad(east_m, pad, mode='reflect', reflect_type='odd')
        north = np.pad(north_m, pad, mode='reflect', reflect_type='odd')
        row, col, inside = w.index(east, north)
        kind = np.where(inside, w.kind[row, col], Kind.OUT)
        obj = w.obj[row, col].astype(np.int64)
        car = self.car_layer[row, col]
        rgb = ground_rgb01(kind, east, north, self.tex)
        fine, _ = self.tex.sample(east * 1.7 + 13.0, north * 1.7 - 7.0)
        top = (kind == Kind.BUILDING) | (kind == Kind.TREE)
        rgb[top] = self.roof_rgb[obj[top]] * (0.85 + 0.3 * fine[top, None])
        rgb[car > 0] = self.car_rgb[car[car > 0]]
        # sun: slope shading (crowns, car and roof edges) and cast shadows
        n = w.size_px
        h0 = self._height(row, col, inside)
        hx = self._height(row, np.minimum(col + 1, n - 1), inside)
        hy = self._height(np.maximum(row - 1, 0), col, inside)
        shade = hillshade((hx - h0) / w.res_m, (hy - h0) / w.res_m, self.capture.sun)
        f = self.shadow_factor
        in_shadow = self.shadow[np.minimum(row // f, self.shadow.shape[0] - 1),
                                np.minimum(col // f, self.shadow.shape[1] - 1)] > 0
        direct = np.where(in_shadow, 0.0, shade / max(math.sin(self.capture.sun.elevation_rad),
                                                     0.2))
        light = self.capture.ambient + (1.0 - self.capture.ambient) * np.clip(direct, 0, 1.3)
        rgb *= light[..., None]
        if self.blur_px > 0:
            rgb = cv2.GaussianBlur(rgb, (0, 0), self.blur_px)
        return self.capture.respond(rgb[pad:-pad, pad:-pad])
