"""What every cross-view dataset shares: the item schema, image IO and metric crops.

Item schema (one dict per query; :func:`collate` stacks them):

* ``ground`` (3, H, W) float32 in [0, 1]; ``aerial`` (3, S, S) float32 in [0, 1], north-up
* ``xy`` (2,) camera position minus the aerial crop centre, east/north, divided by the crop
  half-side ``half_side_m`` (the network's target)
* ``yaw`` REP-103 heading of the ground image's centre line (rad); ``yaw_prior`` a heading
  prior (rad) or NaN when the heading is unknown
* ``camera_latlon_deg`` (2,) float64 WGS84 camera position; ``group`` int64: the city, drive
  or log the query belongs to (retrieval galleries and per-log metrics are per group)
* optional ``aerial_negative`` (3, S, S): a crop of the same place without the camera in
  its central half (synthetic pairs with ``negative_crops``; trains ``loss_negative``)
* optional ``aerial_far`` (3, S, S): a crop of the same city 30-150 m from the camera
  (synthetic pairs with ``far_negatives``: hard retrieval negatives, "no match" examples)

Datasets may also expose a retrieval *gallery* (VIGOR: every satellite image of the split's
cities) through :class:`Gallery`; without one, the gallery is the queries' own crops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import os
from pathlib import Path

import numpy as np
import torch

from ciper_ros.util.errors import UserError


class DatasetError(UserError):
    """A dataset tree or file is missing, malformed or inconsistent (one clear line)."""



def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PNG/JPEG file; a clear error when it cannot be read."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise DatasetError(f'image not found: {p}')
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f'cannot decode image {p} (corrupt or not an image)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaged when shrinking, bilinear when enlarging."""
    import cv2

    if img.shape[:2] == (height, width):
        return img
    shrink = height < img.shape[0] or width < img.shape[1]
    return cv2.resize(img, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def crop_north_up(image: np.ndarray, centre_uv_px: tuple[float, float], side_px: float,
                  out_px: int) -> np.ndarray:
    """Square crop of a north-up image around a sub-pixel centre, resampled to ``out_px``.

    :param image: (H, W, 3) source, pixel centres at integer (u, v) (OpenCV convention)
    :param centre_uv_px: crop centre in source pixels (u right, v down)
    :param side_px: crop side in source pixels
    :return: (out_px, out_px, 3); pixels outside the source are black
    """
    import cv2

    s = out_px / side_px
    cu, cv_ = centre_uv_px
    # output pixel centre (i + 0.5) / out_px of the side maps to the source
    M = np.array([[s, 0.0, (out_px - 1) / 2.0 - s * cu],
                  [0.0, s, (out_px - 1) / 2.0 - s * cv_]])
    interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:   # warpAffine has no area mode: blur-free pre-shrink
        k = int(math.floor(1.0 / s))
        if k >= 2:
            small = cv2.resize(image, (image.shape[1] // k, image.shape[0] // k),
                               interpolation=cv2.INTER_AREA)
            f = image.shape[1] / small.shape[1], image.shape[0] / small.shape[0]
            return crop_north_up(small, ((cu + 0.5) / f[0] - 0.5, (cv_ + 0.5) / f[1] - 0.5),
                                 side_px / f[0], out_px)
        interp = cv2.INTER_LINEAR
    return cv2.warpAffine(image, M, (out_px, out_px), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_tensor_image(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


def make_item(*, ground: np.ndarray, aerial: np.ndarray, offset_xy_m: np.ndarray,
              yaw_rad: float, yaw_prior_rad: float, half_side_m: float,
              camera_latlon_deg: tuple[float, float], group: int,
              aerial_negative: np.ndarray | None = None,
              aerial_far: np.ndarray | None = None) -> dict:
    """Build one item of the schema above from uint8 images and metric labels.

    ``aerial_negative``: optional crop that does not hold the camera in its central half
    (item key ``aerial_negative``; trains the confidence to say "not here").
    ``aerial_far``: optional crop of the same city 30-150 m away (item key ``aerial_far``:
    a hard retrieval negative and a "no match" example).
    """
    if aerial.shape[0] != aerial.shape[1]:
        raise DatasetError(f'aerial crop must be square, got {aerial.shape}')
    off = np.asarray(offset_xy_m, np.float64)
    if not (np.all(np.isfinite(off)) and math.isfinite(yaw_rad) and half_side_m > 0):
        raise DatasetError(f'non-finite label: offset {off}, yaw {yaw_rad}')
    item = {
        'ground': to_tensor_image(ground),
        'aerial': to_tensor_image(aerial),
        'xy': torch.from_numpy((off / half_side_m).astype(np.float32)),
        'yaw': torch.tensor(float(yaw_rad), dtype=torch.float32),
        'yaw_prior': torch.tensor(float(yaw_prior_rad), dtype=torch.float32),
        'half_side_m': torch.tensor(float(half_side_m), dtype=torch.float32),
        'camera_latlon_deg': torch.tensor(np.asarray(camera_latlon_deg, np.float64)),
        'group': torch.tensor(int(group), dtype=torch.int64),
    }
    if aerial_negative is not None:
        item['aerial_negative'] = to_tensor_image(aerial_negative)
    if aerial_far is not None:
        item['aerial_far'] = to_tensor_image(aerial_far)
    return item


def collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@dataclass
class Gallery:
    """A retrieval gallery: aerial crops with their centres, and each query's positives.

    ``positives`` (Q,) gallery index of each query's positive; ``semi_positives`` (Q, G)
    bool (VIGOR's semi-positives, negatives for recall, hits for the hit rates) or None.
    ``load(j)`` returns crop j as a (3, S, S) float tensor; ``centre_latlon_deg`` (G, 2);
    ``group`` (G,) int; ``half_side_m`` (G,). ``per_group``: rank only crops of the query's
    own group (synthetic cities, drives) or the whole gallery (VIGOR's protocol).
    """

    size: int
    load: Callable[[int], torch.Tensor]
    centre_latlon_deg: np.ndarray
    group: np.ndarray
    half_side_m: np.ndarray
    positives: np.ndarray
    semi_positives: np.ndarray | None = None
    per_group: bool = True


class IndexedDraws(torch.utils.data.Dataset):
    """``length`` draws from a dataset, a pure function of (seed, index): exact resume.

    Draw ``i`` takes item ``perm_e[i % N]`` of epoch ``e = i // N`` (a seeded permutation)
    and passes a generator seeded by (seed, i) for its random augmentation.
    """

    def __init__(self, dataset, *, length: int, seed: int) -> None:
        if len(dataset) == 0:
            raise DatasetError('the dataset is empty')
        self.dataset, self.length, self.seed = dataset, int(length), int(seed)
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        n = len(self.dataset)
        epoch = i // n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
        perm = self._perm[1]
        return self.dataset.sample(int(perm[i % n]), np.random.default_rng([self.seed, 7, i]))


def crop_at_offset(image: np.ndarray, centre_en_m: np.ndarray, m_per_px: float,
                   side_px: float, out_px: int) -> np.ndarray:
    """Crop a north-up map image around a point given in metres from the image centre.

    :param centre_en_m: (east, north) of the crop centre relative to the image centre
    :param side_px: crop side in source pixels (``side_px * m_per_px`` metres)
    """
    h, w = image.shape[:2]
    u = (w - 1) / 2.0 + float(centre_en_m[0]) / m_per_px
    v = (h - 1) / 2.0 - float(centre_en_m[1]) / m_per_px
    return crop_north_up(image, (u, v), side_px, out_px)


def rotate_xy(xy: np.ndarray, yaw_rad: float) -> np.ndarray:
    """Vehicle-frame (forward, left) metres -> map-frame (east, north) for heading ``yaw_rad``."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    x, y = float(xy[0]), float(xy[1])
    return np.array([c * x - s * y, s * x + c * y])


def satmap_labels(*, plane, camera_en_m: np.ndarray, yaw_rad: float,
                  camera_from_centre_fl_m: tuple[float, float], theta: float,
                  rotation_range_deg: float, m_per_px: float) -> dict:
    """Labels of a query against a north-up satellite map centred on ``plane``'s origin.

    :param camera_en_m: camera position (east, north) relative to the map centre
    :param camera_from_centre_fl_m: camera minus crop centre in the vehicle frame (forward,
        left), i.e. the (fixed or drawn) test displacement in metres
    :param theta: heading noise in [-1, 1]; the prior is ``yaw - theta * rotation_range``
    """
    cam_from_centre = rotate_xy(camera_from_centre_fl_m, yaw_rad)
    return {'yaw_rad': yaw_rad, 'camera_en_m': camera_en_m,
            'camera_latlon_deg': tuple(plane.latlon_from_xy_m(camera_en_m[None])[0]),
            'crop_centre_en_m': camera_en_m - cam_from_centre,
            'offset_xy_m': cam_from_centre,
            'yaw_prior_rad': math.remainder(yaw_rad - theta * math.radians(rotation_range_deg),
                                            2 * math.pi),
            'm_per_px': m_per_px}


class SatmapQueries:
    """Shared item assembly of KITTI and Ford: a camera frame against a satellite map.

    Subclasses set ``self.cfg`` (with ``ground_size``, ``side_px``, ``aerial_px``,
    ``rotation_range_deg``) and implement ``labels(i, rng)`` (see :func:`satmap_labels`) and
    ``files(i)`` -> (image path, satellite map path, group).
    """

    def labels(self, i: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def files(self, i: int) -> tuple[Path, Path, int]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        return self.sample(i, np.random.default_rng([17, i]))

    def sample(self, i: int, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        lab = self.labels(i, rng)
        image, satmap, group = self.files(i)
        ground = resize(read_image(image), *cfg.ground_size)
        aerial = crop_at_offset(read_image(satmap), lab['crop_centre_en_m'], lab['m_per_px'],
                                cfg.side_px, cfg.aerial_px)
        prior = lab['yaw_prior_rad'] if cfg.rotation_range_deg < 180 else math.nan
        return make_item(ground=ground, aerial=aerial, offset_xy_m=lab['offset_xy_m'],
                         yaw_rad=lab['yaw_rad'], yaw_prior_rad=prior,
                         half_side_m=cfg.side_px * lab['m_per_px'] / 2,
                         camera_latlon_deg=lab['camera_latlon_deg'], group=group)
