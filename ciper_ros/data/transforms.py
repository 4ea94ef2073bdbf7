"""Ground-image transforms that keep the heading label consistent with the pixels.

Panorama convention (the renderer's and VIGOR's): equirectangular, the centre column faces
the image's ``yaw_rad`` and columns turn clockwise to the right, so column ``u`` of a
``W``-wide panorama looks along azimuth ``yaw + pi - 2 pi (u + 0.5) / W`` (REP-103).

* :func:`roll_panorama`: rolling right by ``k`` columns is the panorama at
  ``yaw + 2 pi k / W``: the way the field simulates an unknown heading.
* :func:`limit_fov`: the columns of a ``fov_deg`` slice centred on a direction. The
  released CIPER code cuts the slice but leaves the heading label at the panorama's; here
  the label becomes the slice centre's azimuth (see test_data_transforms.py).
* :func:`heading_prior`: a noisy prior within +-``range_deg`` of the true heading.
"""

from __future__ import annotations

import math

import numpy as np

from ciper_ros.geo.heading import wrap_angle_rad
from ciper_ros.util.errors import UserError


def column_azimuth_rad(u: np.ndarray | float, width: int, yaw_rad: float) -> np.ndarray:
    """REP-103 azimuth of panorama column ``u`` (float columns allowed)."""
    return wrap_angle_rad(yaw_rad + math.pi - 2 * math.pi * (np.asarray(u) + 0.5) / width)


def roll_panorama(pano: np.ndarray, yaw_rad: float, shift_cols: int) -> tuple[np.ndarray, float]:
    """Roll a (H, W, C) panorama right by ``shift_cols``; returns (image, new yaw)."""
    _check_image(pano)
    w = pano.shape[1]
    k = int(shift_cols)
    return np.roll(pano, k, axis=1), wrap_angle_rad(yaw_rad + 2 * math.pi * k / w)


def limit_fov(pano: np.ndarray, yaw_rad: float, fov_deg: float, *,
              centre_rad: float | None = None) -> tuple[np.ndarray, float]:
    """Cut a ``fov_deg`` wide slice of a panorama, centred on azimuth ``centre_rad``.

    :param pano: (H, W, C) equirectangular panorama whose centre column faces ``yaw_rad``
    :param centre_rad: REP-103 azimuth the slice looks along (default: ``yaw_rad``)
    :return: ((H, round(W * fov / 360), C) slice, the slice's heading label). The label is
        the azimuth of the slice's centre, snapped to the whole column it was cut at.
    """
    _check_image(pano)
    if not 0.0 < fov_deg <= 360.0:
        raise UserError(f'fov_deg must be in (0, 360], got {fov_deg}')
    w = pano.shape[1]
    centre = yaw_rad if centre_rad is None else centre_rad
    # roll so that the wanted direction sits at the centre column, then cut the middle
    k = int(round(math.remainder(yaw_rad - centre, 2 * math.pi) * w / (2 * math.pi)))
    rolled, new_yaw = roll_panorama(pano, yaw_rad, -k)
    n = max(1, int(round(w * fov_deg / 360.0)))
    start = w // 2 - n // 2
    # the slice's centre line (between its middle pixel centres) is continuous column
    # start + n/2 - 0.5: azimuth new_yaw for even n, half a column clockwise for odd n
    centre_az = column_azimuth_rad(start + n / 2.0 - 0.5, w, new_yaw)
    return np.ascontiguousarray(rolled[:, start:start + n]), float(centre_az)


def heading_prior(yaw_rad: float, range_deg: float, rng: np.random.Generator) -> float:
    """Draw a heading prior uniformly within +-``range_deg`` of ``yaw_rad``."""
    return wrap_angle_rad(yaw_rad + math.radians(rng.uniform(-range_deg, range_deg)))


def _check_image(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[1] < 2:
        raise UserError(f'expected an (H, W, C) image, got shape {getattr(img, "shape", None)}')
