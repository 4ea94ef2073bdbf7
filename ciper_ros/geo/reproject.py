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


def _rays(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame rays (x right, y down, z forward) of every panorama pixel centre."""
    az = math.pi - 2 * math.pi * (np.arange(width) + 0.5) / width      # left of centre > 0
    el = math.pi / 2 - math.pi * (np.arange(height) + 0.5) / height
    az, el = np.meshgrid(az, el)
    return -np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)


def _pixel_map(camera: PinholeCamera, width: int, height: int):
    x, y, z = _rays(width, height)
    ahead = z > 1e-6
    zs = np.where(ahead, z, 1.0)
    u = camera.fx * x / zs + camera.cx - 0.5          # continuous pixel -> remap index
    v = camera.fy * y / zs + camera.cy - 0.5
    inside = ahead & (u >= -0.5) & (u <= camera.width - 0.5) & (v >= -0.5) & \
        (v <= camera.height - 0.5)
    return u.astype(np.float32), v.astype(np.float32), inside


def pinhole_footprint(camera: PinholeCamera, *, width: int, height: int) -> np.ndarray:
    """(height, width) bool: the panorama pixels a level ``camera`` sees (centred)."""
    return _pixel_map(camera, width, height)[2]


def pinhole_to_panorama(image: np.ndarray, camera: PinholeCamera, *, width: int,
                        height: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample a level pinhole image into a (height, width, 3) panorama and its footprint.

    ``image`` is (camera.height, camera.width, 3); pixels outside the footprint are 0.
    """
    import cv2

    if image.shape[:2] != (camera.height, camera.width):
        raise UserError(f'image is {image.shape[1]}x{image.shape[0]}, the camera '
                         f'{camera.width}x{camera.height}')
    u, v, inside = _pixel_map(camera, width, height)
    pano = cv2.remap(image, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pano[~inside] = 0
    return pano, inside
