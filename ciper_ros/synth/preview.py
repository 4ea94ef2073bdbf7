"""Preview sheets: aerial crops with the camera pose drawn, next to the ground views."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ciper_ros.util.errors import UserError


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


def city_preview_sheet(city_dir: str | os.PathLike, *, n_rows: int = 4, seed: int = 0,
                       row_px: int = 180, crop_side_m: float = 60.0,
                       hfov_deg: float = 90.0) -> np.ndarray:
    """Rows of aerial crop with the pose drawn | forward pinhole | 360 panorama. RGB uint8.

    Poses are sampled on the roads of the city folder (``ciper synth city``); the pinhole
    camera is 16:9 with ``hfov_deg``, the panorama is centred on the heading.
    """
    from ciper_ros.geo.camera import PinholeCamera
    from ciper_ros.maps import open_store
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.pairs import sample_road_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import World

    if n_rows < 1:
        raise UserError(f'a preview sheet needs at least one row, got {n_rows}')
    world_path, map_path = city_paths(city_dir)
    world = World.load(world_path)
    renderer = GroundRenderer(world, epoch=1)
    cam = PinholeCamera.from_hfov(row_px * 16 // 9, row_px, hfov_deg)
    rng = np.random.default_rng(seed)
    gap = np.full((row_px, 6, 3), 255, np.uint8)
    rows = []
    with open_store(map_path) as store:
        for _ in range(n_rows):
            xy, yaw = sample_road_pose(world, rng, margin_m=crop_side_m)
            pose = CameraPose(xy[0], xy[1], yaw)
            lat, lon = world.plane.latlon_from_xy_m(xy)[0]
            crop = store.crop((lat, lon), crop_side_m, row_px)
            aerial = draw_pose(crop.image_rgb, np.zeros(2), yaw, crop.m_per_px,
                               fov_rad=math.radians(hfov_deg))
            pinhole = renderer.pinhole(pose, cam)
            pano = renderer.panorama(pose, width=4 * row_px, height=row_px)
            rows.append(np.concatenate([aerial, gap, pinhole, gap, pano], axis=1))
    sep = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (sep, row)][1:], axis=0)
