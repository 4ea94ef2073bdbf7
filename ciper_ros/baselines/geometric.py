"""A non-learned geometric baseline: bird's-eye view on flat ground + normalised correlation.

The ground image is projected onto the ground plane under a flat-ground assumption (camera
``camera_height_m`` above it, level), giving a north-up bird's-eye view for each candidate
heading; each view is matched against the aerial crop by masked normalised cross-correlation
(OpenCV ``TM_CCOEFF_NORMED``) over every position where the camera may be. The best
(position, heading) over all headings wins. No training, same inputs as the model.

Panoramas are equirectangular 360 x 180 deg with the centre column facing the heading
(the renderer's and VIGOR's convention); pinhole images use their intrinsics.

Shapes: ground (H, W, 3) and aerial (A, A, 3) float32 in [0, 1] (or uint8), north-up aerial
with ``m_per_px``; positions are east/north metres from the crop centre.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class GeometricConfig:
    camera_height_m: float = 1.7
    search_radius_m: float = 16.0   # camera within +-this of the crop centre (central half)
    view_radius_m: float = 16.0     # bird's-eye view half side; farther ground is masked
    min_range_m: float = 2.0        # the vehicle itself / the camera's foot
    yaw_bins: int = 72              # 5 deg steps over 360 (or over the prior's range)
    hfov_deg: float = 90.0          # pinhole ground images


def _as_float(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return a.astype(np.float32)


def _bev_grid(side_px: int, m_per_px: float, yaw_rad: float):
    """East/north offsets (m) of the view's pixel centres; ranges and camera-frame angles."""
    c = (np.arange(side_px) + 0.5 - side_px / 2.0) * m_per_px
    east, north = np.meshgrid(c, -c)
    rng = np.hypot(east, north)
    rel_az = np.arctan2(north, east) - yaw_rad          # counter-clockwise from the heading
    return rng, np.remainder(rel_az + math.pi, 2 * math.pi) - math.pi


def bev_from_panorama(pano: np.ndarray, yaw_rad: float, *, side_px: int, m_per_px: float,
                      cfg: GeometricConfig = GeometricConfig()) -> tuple[np.ndarray, np.ndarray]:
    """North-up bird's-eye view (side_px, side_px, 3) and its mask for heading ``yaw_rad``."""
    import cv2

    h, w = pano.shape[:2]
    rng, rel = _bev_grid(side_px, m_per_px, yaw_rad)
    # column u: the centre column faces the heading; columns turn clockwise to the right
    u = (math.pi - rel) * w / (2 * math.pi) - 0.5
    elev = -np.arctan2(cfg.camera_height_m, np.maximum(rng, 1e-3))
    v = (math.pi / 2 - elev) * h / math.pi - 0.5
    u = np.remainder(u, w).astype(np.float32)
    bev = cv2.remap(_as_float(pano), u, v.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_WRAP)
    mask = (rng >= cfg.min_range_m) & (rng <= cfg.view_radius_m) & (v < h - 1)
    return bev, mask


def bev_from_pinhole(img: np.ndarray, yaw_rad: float, *, side_px: int, m_per_px: float,
                     cfg: GeometricConfig = GeometricConfig()) -> tuple[np.ndarray, np.ndarray]:
    """North-up bird's-eye view of a level pinhole camera (``cfg.hfov_deg``) and its mask."""
    import cv2

    h, w = img.shape[:2]
    f = (w / 2.0) / math.tan(math.radians(cfg.hfov_deg) / 2.0)
    rng, rel = _bev_grid(side_px, m_per_px, yaw_rad)
    fwd = rng * np.cos(rel)                     # along the optical axis
    left = rng * np.sin(rel)
    ok = fwd > 0.1
    safe = np.where(ok, fwd, 1.0)
    u = w / 2.0 - f * left / safe - 0.5
    v = h / 2.0 + f * cfg.camera_height_m / safe - 0.5
    bev = cv2.remap(_as_float(img), u.astype(np.float32), v.astype(np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = ok & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1) & \
        (rng >= cfg.min_range_m) & (rng <= cfg.view_radius_m)
    return bev, mask


def localize_in_crop(ground: np.ndarray, aerial: np.ndarray, *, m_per_px: float,
                     ground_kind: str = 'panorama', cfg: GeometricConfig = GeometricConfig(),
                     yaw_prior_rad: float | None = None,
                     yaw_range_rad: float = math.pi) -> tuple[np.ndarray, float, float]:
    """Return (offset_xy_m east/north from the crop centre, yaw_rad, correlation score)."""
    import cv2

    if ground_kind not in ('panorama', 'pinhole'):
        raise UserError(f"ground_kind must be 'panorama' or 'pinhole', got {ground_kind!r}")
    a = _as_float(aerial)
    side = a.shape[0]
    view_px = 2 * int(round(cfg.view_radius_m / m_per_px))
    search_px = int(round(cfg.search_radius_m / m_per_px))
    # the aerial window the view can slide over: the camera within +-search of the centre
    lo = side // 2 - search_px - view_px // 2
    hi = side // 2 + search_px + view_px // 2
    pad = max(0, -lo, hi - side)
    if pad:
        a = cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    window = a[lo + pad:hi + pad, lo + pad:hi + pad]
    if yaw_prior_rad is None or yaw_range_rad >= math.pi:
        yaws = np.arange(cfg.yaw_bins) * 2 * math.pi / cfg.yaw_bins
    else:
        yaws = yaw_prior_rad + np.linspace(-yaw_range_rad, yaw_range_rad, cfg.yaw_bins)
    make = bev_from_panorama if ground_kind == 'panorama' else bev_from_pinhole
    g = _as_float(ground)
    best = (-np.inf, 0.0, 0, 0)
    for yaw in yaws:
        bev, mask = make(g, float(yaw), side_px=view_px, m_per_px=m_per_px, cfg=cfg)
        if mask.sum() < 16:
            continue
        m3 = np.repeat(mask[..., None], 3, axis=2).astype(np.float32)
        r = cv2.matchTemplate(window, bev, cv2.TM_CCOEFF_NORMED, mask=m3)
        r = np.nan_to_num(r, nan=-1.0, posinf=-1.0, neginf=-1.0)
        iy, ix = np.unravel_index(int(r.argmax()), r.shape)
        if r[iy, ix] > best[0]:
            best = (float(r[iy, ix]), float(yaw), int(ix), int(iy))
    score, yaw, ix, iy = best
    # template top-left (ix, iy) in the window -> camera pixel in the crop
    cx = lo + ix + view_px / 2.0
    cy = lo + iy + view_px / 2.0
    offset = np.array([(cx - side / 2.0) * m_per_px, -(cy - side / 2.0) * m_per_px])
    return offset, math.remainder(yaw, 2 * math.pi), score


def evaluate_pairs(pairs, *, ground_kind: str, yaw_prior_range_rad: float | None = None,
                   cfg: GeometricConfig = GeometricConfig(), progress: bool = True) -> dict:
    """Compute the evaluator's GT-crop pose metrics of this baseline over synthetic pairs.

    ``pairs``: what ``SyntheticPairs`` / ``ShardPairs`` yield (the same pairs ``ciper eval``
    gives the model for the same cities, settings and seed).
    """
    import time

    from tqdm import tqdm

    from ciper_ros.metrics.pose import pose_metrics

    pred, true, pyaw, tyaw, ms = [], [], [], [], []
    for i in tqdm(range(len(pairs)), desc='geometric baseline', unit='pair',
                  disable=not progress):
        p = pairs[i]
        prior = float(p['yaw_prior_rad'])
        use_prior = yaw_prior_range_rad is not None and math.isfinite(prior)
        t0 = time.perf_counter()
        off, yaw, _ = localize_in_crop(p['ground'], p['aerial'], m_per_px=float(p['m_per_px']),
                                       ground_kind=ground_kind, cfg=cfg,
                                       yaw_prior_rad=prior if use_prior else None,
                                       yaw_range_rad=yaw_prior_range_rad if use_prior
                                       else math.pi)
        ms.append(1e3 * (time.perf_counter() - t0))
        pred.append(off)
        true.append(np.asarray(p['offset_xy_m'], np.float64))
        pyaw.append(yaw)
        tyaw.append(float(p['yaw_rad']))
    out = pose_metrics(np.array(pred), np.array(true), pred_yaw_rad=np.array(pyaw),
                       true_yaw_rad=np.array(tyaw))
    out['ms_per_pair_median'] = float(np.median(ms))
    return out
