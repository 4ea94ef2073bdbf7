"""Preview sheets: aerial crops with the camera pose drawn, next to the ground views."""

from __future__ import annotations

import math

import cv2
import numpy as np


def draw_pose(aerial: np.ndarray, offset_xy_m: np.ndarray, yaw_rad: float, m_per_px: float, *,
              fov_rad: float | None = None) -> np.ndarray:
    """Copy of ``aerial`` with the camera position, heading and field of view drawn."""
    img = np.ascontiguousarray(aerial).copy()
    s = img.shape[0]
    u = s / 2 + offset_xy_m[0] / m_per_px
    v = s / 2 - offset_xy_m[1] / m_per_px
    length = s * 0.18
    tip = (u + length * math.cos(yaw_rad), v - length * math.sin(yaw_rad))
    if fov_rad is not None:
        for side in (-1, 1):
            a = yaw_rad + side * fov_rad / 2
            end = (u + length * 1.4 * math.cos(a), v - length * 1.4 * math.sin(a))
            cv2.line(img, (int(u), int(v)), (int(end[0]), int(end[1])), (255, 255, 0), 1,
                     cv2.LINE_AA)
    cv2.arrowedLine(img, (int(u), int(v)), (int(tip[0]), int(tip[1])), (255, 40, 40), 2,
                    cv2.LINE_AA, tipLength=0.3)
    cv2.circle(img, (int(round(u)), int(round(v))), 3, (255, 40, 40), -1, cv2.LINE_AA)
    return img


def preview_sheet(pairs: list[dict], *, row_height: int = 160,
                  fov_rad: float | None = None) -> np.ndarray:
    """One row per pair: aerial crop with the pose | ground image. RGB uint8."""
    rows = []
    for p in pairs:
        aer = draw_pose(p['aerial'], p['offset_xy_m'], float(p['yaw_rad']),
                        float(p['m_per_px']), fov_rad=fov_rad)
        aer = cv2.resize(aer, (row_height, row_height), interpolation=cv2.INTER_AREA)
        g = p['ground']
        gw = int(round(g.shape[1] * row_height / g.shape[0]))
        g = cv2.resize(g, (gw, row_height), interpolation=cv2.INTER_AREA)
        rows.append(np.concatenate([aer, np.full((row_height, 6, 3), 255, np.uint8), g], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            for r in rows]
    return np.concatenate(rows, axis=0)
