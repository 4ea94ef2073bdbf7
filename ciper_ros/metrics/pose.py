"""Pose metrics of cross-view localization, as the published protocols define them.

Position error in metres (mean, median), orientation error wrapped to [0, 180] degrees
(mean, median); KITTI recall of lateral/longitudinal error within 1/3/5 m (signed error
decomposed in the vehicle frame of the ground-truth heading) and of orientation within
1/3/5 degrees. Retrieval metrics are in :mod:`ciper_ros.metrics.retrieval`.
"""

from __future__ import annotations

import numpy as np


def wrap_deg(angle_deg: np.ndarray) -> np.ndarray:
    """Absolute angle difference wrapped to [0, 180] degrees."""
    a = np.abs(np.remainder(np.asarray(angle_deg, dtype=np.float64) + 180.0, 360.0) - 180.0)
    return a


def pose_metrics(pred_xy_m: np.ndarray, true_xy_m: np.ndarray, *,
                 pred_yaw_rad: np.ndarray | None = None,
                 true_yaw_rad: np.ndarray | None = None,
                 thresholds_m: tuple[float, ...] = (1.0, 3.0, 5.0),
                 thresholds_deg: tuple[float, ...] = (1.0, 3.0, 5.0)) -> dict:
    """Position and orientation errors; KITTI-style lateral/longitudinal recalls.

    Positions are east/north metres (N, 2); yaws REP-103 radians (N,). The longitudinal
    axis is the true heading, lateral is 90 degrees to its left.
    """
    p = np.asarray(pred_xy_m, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(true_xy_m, dtype=np.float64).reshape(-1, 2)
    err = p - t
    dist = np.linalg.norm(err, axis=1)
    out = {'count': int(len(dist)), 'position_error_m_mean': float(dist.mean()),
           'position_error_m_median': float(np.median(dist))}
    for th in thresholds_m:
        out[f'position_within_{th:g}m'] = float(np.mean(dist <= th))
    if true_yaw_rad is not None:
        ty = np.asarray(true_yaw_rad, dtype=np.float64).reshape(-1)
        lon = err[:, 0] * np.cos(ty) + err[:, 1] * np.sin(ty)
        lat = -err[:, 0] * np.sin(ty) + err[:, 1] * np.cos(ty)
        for th in thresholds_m:
            out[f'lateral_within_{th:g}m'] = float(np.mean(np.abs(lat) <= th))
            out[f'longitudinal_within_{th:g}m'] = float(np.mean(np.abs(lon) <= th))
        out['lateral_error_m_median'] = float(np.median(np.abs(lat)))
        out['longitudinal_error_m_median'] = float(np.median(np.abs(lon)))
        if pred_yaw_rad is not None:
            d = wrap_deg(np.degrees(np.asarray(pred_yaw_rad, dtype=np.float64).reshape(-1)
                                    - ty))
            out['orientation_error_deg_mean'] = float(d.mean())
            out['orientation_error_deg_median'] = float(np.median(d))
            for th in thresholds_deg:
                out[f'orientation_within_{th:g}deg'] = float(np.mean(d <= th))
    return out


def markdown_table(metrics: dict, *, title: str = '') -> str:
    """Render a flat metrics dict as a two-column Markdown table."""
    lines = [f'### {title}', ''] if title else []
    lines += ['| metric | value |', '| --- | --- |']
    for k, v in metrics.items():
        lines.append(f'| {k} | {v:.4g} |' if isinstance(v, float) else f'| {k} | {v} |')
    return '\n'.join(lines) + '\n'
