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
            out['heading_error_deg_mean'] = float(d.mean())
            out['heading_error_deg_median'] = float(np.median(d))
            for th in thresholds_deg:
                out[f'heading_within_{th:g}deg'] = float(np.mean(d <= th))
    return out


def markdown_table(metrics: dict, *, title: str = '') -> str:
    """Render a flat metrics dict as a two-column Markdown table."""
    lines = [f'### {title}', ''] if title else []
    lines += ['| metric | value |', '| --- | --- |']
    for k, v in metrics.items():
        lines.append(f'| {k} | {v:.4g} |' if isinstance(v, float) else f'| {k} | {v} |')
    return '\n'.join(lines) + '\n'


# names of stored records (training logs, checkpoints' curves, model cards) before metrics
# had one naming scheme, and the ones that replace them
LEGACY_PREFIXES = {'orientation_error_deg_': 'heading_error_deg_',
                   'orientation_within_': 'heading_within_'}


def upgrade_metric_names(record: dict) -> dict:
    """Return ``record`` with legacy metric names renamed (``val/`` prefixes kept).

    ``recall@1%`` (the positive within the top ceil(G / 100)) becomes the variant its K
    equals, ``recall@1%_transgeo`` (G // 100) or ``recall@1%_vigor`` (int(0.01 G) + 1),
    when the record holds G (``count`` or ``gallery_size``); else it is left as it was.
    """
    out = {}
    for key, value in record.items():
        pre, _, name = key.rpartition('/')
        pre = pre + '/' if pre else ''
        for old, new in LEGACY_PREFIXES.items():
            if name.startswith(old):
                name = new + name[len(old):]
        out[pre + name] = value
    for pre in ('', 'val/'):
        k, g = out.get(f'{pre}recall@1%_k'), out.get(f'{pre}count', out.get('gallery_size'))
        if k is None or g is None or f'{pre}recall@1%' not in out:
            continue
        variant = ('transgeo' if k == g // 100 else 'vigor' if k == int(0.01 * g) + 1
                   else None)
        if variant:
            out[f'{pre}recall@1%_{variant}'] = out.pop(f'{pre}recall@1%')
            out[f'{pre}recall@1%_{variant}_k'] = out.pop(f'{pre}recall@1%_k')
    return out
