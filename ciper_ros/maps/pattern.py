"""Procedural test imagery defined in ENU metres: a metric grid and point markers.

Used by the demo and the tests to check, pixel by pixel, that a crop lands where geodesy says.
"""

from __future__ import annotations

import numpy as np


def grid_sampler(*, spacing_m: float = 10.0, line_width_m: float = 0.4,
                 major_every: int = 5, muted: bool = False):
    """ENU sampler: coloured background with grid lines every ``spacing_m`` metres.

    The background hue encodes position (so crops are visually distinct); minor lines are
    white, major lines (every ``major_every`` minor ones) red. ``muted`` draws everything in
    grey levels (R = G = B), which leaves cyan free for markers.
    """
    def sample(east_m: np.ndarray, north_m: np.ndarray, m_per_px: float) -> np.ndarray:
        out = np.empty(east_m.shape + (3,), dtype=np.uint8)
        out[..., 0] = (96 + 64 * np.sin(east_m / 37.0)).astype(np.uint8)
        out[..., 1] = (96 + 64 * np.sin(north_m / 53.0)).astype(np.uint8)
        out[..., 2] = (96 + 64 * np.cos((east_m + north_m) / 71.0)).astype(np.uint8)
        half = max(line_width_m, m_per_px) / 2.0
        de = np.abs(east_m - spacing_m * np.round(east_m / spacing_m))
        dn = np.abs(north_m - spacing_m * np.round(north_m / spacing_m))
        out[(de < half) | (dn < half)] = (255, 255, 255)
        major = spacing_m * major_every
        de = np.abs(east_m - major * np.round(east_m / major))
        dn = np.abs(north_m - major * np.round(north_m / major))
        out[(de < half * 2) | (dn < half * 2)] = (230, 40, 40)
        if muted:
            grey = out.mean(axis=-1, dtype=np.float32).astype(np.uint8) // 2
            out[...] = grey[..., None]
        return out
    return sample


def marker_sampler(points_xy_m: np.ndarray, *, radius_m: float = 1.0,
                   background_rgb: tuple[int, int, int] = (20, 20, 20),
                   marker_rgb: tuple[int, int, int] = (255, 255, 255)):
    """ENU sampler: filled discs of ``radius_m`` at (N, 2) east/north points."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(points_xy_m, dtype=np.float64).reshape(-1, 2))

    def sample(east_m: np.ndarray, north_m: np.ndarray, m_per_px: float) -> np.ndarray:
        out = np.empty(east_m.shape + (3,), dtype=np.uint8)
        out[...] = background_rgb
        query = np.stack([east_m.ravel(), north_m.ravel()], axis=-1)
        dist, _ = tree.query(query, distance_upper_bound=radius_m)
        out.reshape(-1, 3)[np.isfinite(dist)] = marker_rgb
        return out
    return sample


def compose_samplers(base, *overlays):
    """Overlay samplers on a base: ``overlays`` are (sampler, marker_rgb) pairs.

    Pixels an overlay paints exactly in its ``marker_rgb`` replace the result below it.
    """

    def sample(east_m: np.ndarray, north_m: np.ndarray, m_per_px: float) -> np.ndarray:
        out = base(east_m, north_m, m_per_px)
        for overlay, marker_rgb in overlays:
            top = overlay(east_m, north_m, m_per_px)
            mask = np.all(top == np.asarray(marker_rgb, dtype=np.uint8), axis=-1)
            out[mask] = top[mask]
        return out
    return sample


def find_marker_centroids(image_rgb: np.ndarray, *, min_weight: float = 200.0) -> np.ndarray:
    """Centroids of cyan markers (G and B high, R low) in continuous (u, v) px.

    Intensity-weighted over each connected blob (sub-pixel); blobs touching the image border
    are skipped since they are cut. Returns (N, 2); pixel (col, row) has centre (col + .5,
    row + .5).
    """
    import cv2

    img = np.asarray(image_rgb).astype(np.float64)
    weight = np.clip(np.minimum(img[..., 1], img[..., 2]) - img[..., 0], 0.0, None)
    mask = (weight > 40.0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        cv2.dilate(mask, np.ones((3, 3), np.uint8)))
    h, w = mask.shape
    vv, uu = np.mgrid[0:h, 0:w]
    out = []
    for i in range(1, n):
        x, y, bw, bh, _ = stats[i]
        if x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        wi = np.where(labels == i, weight, 0.0)
        total = wi.sum()
        if total < min_weight:
            continue
        out.append(((wi * uu).sum() / total + 0.5, (wi * vv).sum() / total + 0.5))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def write_pattern_map(out, *, center_latlon_deg: tuple[float, float], size_m: float,
                      zooms, spacing_m: float = 10.0, fmt: str = 'png',
                      overwrite: bool = False) -> int:
    """Write a metric grid map: ``*.mbtiles`` (resumable) or an XYZ folder; new tiles."""
    from pathlib import Path

    from ciper_ros.geo import LatLonBounds, LocalTangentPlane
    from ciper_ros.maps.mbtiles import MBTilesWriter
    from ciper_ros.maps.pyramid import write_pyramid
    from ciper_ros.maps.xyz import XYZWriter

    out = Path(out)
    bounds = LatLonBounds.around(center_latlon_deg, size_m)
    if out.suffix == '.mbtiles':
        writer = MBTilesWriter(out, name='ciper metric grid', fmt=fmt, bounds=bounds,
                               resume=True, overwrite=overwrite)
    else:
        writer = XYZWriter(out, name='ciper metric grid', fmt=fmt, bounds=bounds)
    with writer:
        return write_pyramid(writer, plane=LocalTangentPlane(*center_latlon_deg),
                             sampler=grid_sampler(spacing_m=spacing_m), bounds=bounds,
                             zooms=zooms, desc='pattern tiles')
