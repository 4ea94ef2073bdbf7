"""A level pinhole image as the matching part of an equirectangular panorama.

One panorama model can then serve forward cameras: the pinhole image is resampled onto the
panorama's columns and rows around its optical axis (the centre column, so the model's
heading is the camera's), and the rest of the panorama is left black. Training draws the
same footprints on panoramas (:func:`pinhole_footprint`), so the model sees the inputs it
will get.

Panorama convention (the renderer's, VIGOR's): 360 x 180 degrees, the centre column faces
the heading, columns turn clockwise to the right, row 0 looks straight up.
"""

from __future__ import annotations

import math

import numpy as np

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.util.errors import UserError


def _rays(width: int, height: int,
          yaw_rad: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays (x right, y down, z forward) of every panorama pixel centre in a camera's frame.

    ``yaw_rad``: the camera's heading relative to the panorama's centre column (left > 0).
    """
    az = math.pi - 2 * math.pi * (np.arange(width) + 0.5) / width      # left of centre > 0
    az = az - yaw_rad
    el = math.pi / 2 - math.pi * (np.arange(height) + 0.5) / height
    az, el = np.meshgrid(az, el)
    return -np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)


def _pixel_map(camera: PinholeCamera, width: int, height: int, yaw_rad: float = 0.0):
    x, y, z = _rays(width, height, yaw_rad)
    ahead = z > 1e-6
    zs = np.where(ahead, z, 1.0)
    u = camera.fx * x / zs + camera.cx - 0.5          # continuous pixel -> remap index
    v = camera.fy * y / zs + camera.cy - 0.5
    inside = ahead & (u >= -0.5) & (u <= camera.width - 0.5) & (v >= -0.5) & \
        (v <= camera.height - 0.5)
    return u.astype(np.float32), v.astype(np.float32), inside, z


def pinhole_footprint(camera: PinholeCamera, *, width: int, height: int) -> np.ndarray:
    """(height, width) bool: the panorama pixels a level ``camera`` sees (centred)."""
    return _pixel_map(camera, width, height)[2]


def rig_footprint(rig, *, width: int, height: int) -> np.ndarray:
    """(height, width) bool: the panorama pixels any camera of ``rig`` (RigCamera) sees."""
    seen = np.zeros((height, width), bool)
    for rc in rig:
        seen |= _pixel_map(rc.camera, width, height, rc.yaw_rad)[2]
    return seen


def pinhole_to_panorama(image: np.ndarray, camera: PinholeCamera, *, width: int,
                        height: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample a level pinhole image into a (height, width, 3) panorama and its footprint.

    ``image`` is (camera.height, camera.width, 3); pixels outside the footprint are 0.
    """
    import cv2

    if image.shape[:2] != (camera.height, camera.width):
        raise UserError(f'image is {image.shape[1]}x{image.shape[0]}, the camera '
                         f'{camera.width}x{camera.height}')
    u, v, inside, _ = _pixel_map(camera, width, height)
    pano = cv2.remap(image, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pano[~inside] = 0
    return pano, inside


def rig_to_panorama(images, rig, *, width: int,
                    height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a rig's level pinhole images into one (height, width, 3) panorama.

    ``rig``: :class:`~ciper_ros.geo.camera.RigCamera` per image, same order; each image
    fills the azimuths its intrinsics and mount yaw cover (the centre column faces the
    rig's reference heading); where two cameras see the same ray, the one looking closer
    to it wins. The position offsets of the mounts are not applied: the panorama is seen
    from the rig's centre (parallax of a rig's metre is below a ground pixel beyond ~20 m).
    Returns (panorama, seen (height, width) bool, owner (height, width) int: the camera
    index per pixel, -1 where none sees it); unseen pixels are 0.
    """
    import cv2

    if len(images) != len(rig) or not len(rig):
        raise UserError(f'a rig of {len(rig)} cameras needs as many images, got {len(images)}')
    pano = np.zeros((height, width, 3), np.uint8)
    best = np.full((height, width), -np.inf)
    owner = np.full((height, width), -1, np.int64)
    for i, (image, rc) in enumerate(zip(images, rig, strict=True)):
        cam = rc.camera
        if image.shape[:2] != (cam.height, cam.width):
            raise UserError(f'image {i} ({rc.name or "camera"}) is {image.shape[1]}x'
                            f'{image.shape[0]}, its camera {cam.width}x{cam.height}')
        u, v, inside, z = _pixel_map(cam, width, height, rc.yaw_rad)
        take = inside & (z > best)
        if not take.any():
            continue
        warped = cv2.remap(image, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        pano[take] = warped[take]
        best[take] = z[take]
        owner[take] = i
    return pano, owner >= 0, owner
