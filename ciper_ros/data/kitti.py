"""KITTI cross-view (Shi & Li, CVPR 2022 layout): front camera frames against satellite maps.

Layout::

    <root>/raw_data/<day>/calib_cam_to_cam.txt
    <root>/raw_data/<day>/<drive>/image_02/data/<frame>.png     left colour camera
    <root>/raw_data/<day>/<drive>/oxts/data/<frame>.txt         lat lon alt roll pitch yaw ...
    <root>/satmap/<day>/<drive>/<frame>.png                     north-up, centred on the GPS
    <root>/train_files.txt  test1_files.txt  test2_files.txt    (or under dataLoader/)

Split files list ``<day>/<drive>/<frame>.png``; the test files add the fixed shifts
``shift_x shift_y theta`` in [-1, 1] (test1: same area, test2: cross area). Training draws
them uniformly per sample.

Labels, in this package's frame (aerial north-up, REP-103 yaw):

* heading: the oxts yaw (already counter-clockwise from east) of the vehicle, which the
  forward-looking camera shares;
* camera position: the GPS/IMU position plus the camera-GPS offset (1.08 m forward, 0.26 m
  to the right for the left colour camera), rotated by the heading;
* crop: ``side_px`` satellite pixels around ``camera - R(yaw) (shift_x * lon_range,
  shift_y * lat_range)``; so the camera sits ``shift_x * 20 m`` ahead of and
  ``shift_y * 20 m`` left of the crop centre (the displacement the released code applies,
  re-expressed on a north-up crop);
* heading prior: ``yaw - theta * rotation_range`` (10 degrees, or 180 for unknown heading).

Scale: web-mercator zoom 18 at scale 2, from each frame's latitude: 0.1958 m/px at
49.015 deg (the constant the released code uses; the per-frame value differs by < 0.03 %).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np

from ciper_ros.data.common import DatasetError, rotate_xy, satmap_labels, SatmapQueries
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.geo.mercator import ground_resolution_m_per_px
from ciper_ros.util.errors import UserError

SPLIT_FILES = {'train': 'train_files.txt', 'test1': 'test1_files.txt',
               'test2': 'test2_files.txt'}
CAMERA_GPS_OFFSET_M = (1.08, -0.26)     # left colour camera: forward, left of the GPS/IMU
SATMAP_ZOOM = 18
SATMAP_SCALE = 2


def satmap_m_per_px(lat_deg: float, *, zoom: int = SATMAP_ZOOM,
                    scale: int = SATMAP_SCALE) -> float:
    return float(ground_resolution_m_per_px(lat_deg, zoom, scale=scale))


def read_oxts(path: Path) -> np.ndarray:
    """Read the 30 values of one oxts line (lat, lon, alt, roll, pitch, yaw, ...)."""
    if not path.is_file():
        raise DatasetError(f'oxts file not found: {path}')
    try:
        values = np.array([float(v) for v in path.read_text().split()])
    except ValueError:
        raise DatasetError(f'{path}: oxts values are not numbers') from None
    if len(values) < 6 or not np.all(np.isfinite(values[:6])):
        raise DatasetError(f'{path}: expected at least lat lon alt roll pitch yaw, '
                           f'got {len(values)} values')
    return values


def read_rect_intrinsics(path: Path, camera: str = '02') -> np.ndarray:
    """3x3 K of ``P_rect_<camera>`` from a KITTI ``calib_cam_to_cam.txt``."""
    if not path.is_file():
        raise DatasetError(f'calibration not found: {path}')
    for line in path.read_text().splitlines():
        if line.startswith(f'P_rect_{camera}:'):
            try:
                P = np.array([float(v) for v in line.split(':', 1)[1].split()]).reshape(3, 4)
            except ValueError:
                raise DatasetError(f'{path}: P_rect_{camera} is not 12 numbers') from None
            return P[:, :3]
    raise DatasetError(f'{path}: no P_rect_{camera} line')


@dataclass(frozen=True)
class KittiConfig:
    split: str = 'train'                 # 'train', 'test1' (same area), 'test2' (cross area)
    split_file: str | None = None        # default: <root>/<split>_files.txt
    shift_range_lat_m: float = 20.0
    shift_range_lon_m: float = 20.0
    rotation_range_deg: float = 10.0     # 10 (heading prior) or 180 (heading unknown)
    ground_size: tuple[int, int] = (64, 256)
    side_px: int = 512                   # crop side in satellite pixels (about 100 m)
    aerial_px: int = 128
    camera_offset: bool = True

    def __post_init__(self) -> None:
        if self.split not in SPLIT_FILES:
            raise UserError(f'KittiConfig.split must be one of {tuple(SPLIT_FILES)}, '
                             f'got {self.split!r}')
        if not 0 < self.rotation_range_deg <= 180:
            raise UserError('rotation_range_deg must be in (0, 180]')


class KittiDataset(SatmapQueries):
    def __init__(self, root: str | Path, cfg: KittiConfig = KittiConfig()) -> None:
        self.root = Path(root)
        self.cfg = cfg
        split_file = Path(cfg.split_file) if cfg.split_file else next(
            (p for p in (self.root / SPLIT_FILES[cfg.split],
                         self.root / 'dataLoader' / SPLIT_FILES[cfg.split]) if p.is_file()),
            None)
        if split_file is None or not split_file.is_file():
            raise DatasetError(f'KITTI split file {SPLIT_FILES[cfg.split]} not found under '
                               f'{self.root}')
        self.frames: list[str] = []
        shifts = []
        fixed = cfg.split != 'train'
        for n, line in enumerate(split_file.read_text().splitlines(), 1):
            tok = line.split()
            if not tok:
                continue
            if fixed and len(tok) != 4:
                raise DatasetError(f'{split_file}:{n}: expected "<frame>'
                                   f'{" shift_x shift_y theta" if fixed else ""}"')
            parts = tok[0].split('/')
            if len(parts) != 3 or not parts[2].endswith('.png'):
                raise DatasetError(f'{split_file}:{n}: frame {tok[0]!r} is not '
                                   f'<day>/<drive>/<frame>.png')
            self.frames.append(tok[0])
            if fixed:
                try:
                    s = [float(v) for v in tok[1:4]]
                except ValueError:
                    raise DatasetError(f'{split_file}:{n}: shifts are not numbers') from None
                if not all(math.isfinite(v) and abs(v) <= 1.0 for v in s):
                    raise DatasetError(f'{split_file}:{n}: shifts must be in [-1, 1]')
                shifts.append(s)
        if not self.frames:
            raise DatasetError(f'{split_file} lists no frames')
        self.fixed_shifts = np.asarray(shifts, np.float64) if fixed else None
        drives = sorted({f.rsplit('/', 1)[0] for f in self.frames})
        self.drive_index = {d: i for i, d in enumerate(drives)}

    def __len__(self) -> int:
        return len(self.frames)

    def paths(self, i: int) -> dict[str, Path]:
        day, drive, name = self.frames[i].split('/')
        raw = self.root / 'raw_data' / day
        return {'image': raw / drive / 'image_02' / 'data' / name.lower(),
                'oxts': raw / drive / 'oxts' / 'data' / name.lower().replace('.png', '.txt'),
                'calib': raw / 'calib_cam_to_cam.txt',
                'satmap': self.root / 'satmap' / self.frames[i]}

    def intrinsics(self, i: int) -> np.ndarray:
        return read_rect_intrinsics(self.paths(i)['calib'])

    def shifts(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """(shift_x, shift_y, theta) in [-1, 1]: fixed for the test splits, drawn for train."""
        if self.fixed_shifts is not None:
            return self.fixed_shifts[i]
        return rng.uniform(-1.0, 1.0, 3)

    def labels(self, i: int, rng: np.random.Generator) -> dict:
        """Metric labels of frame i (no image IO beyond the oxts file)."""
        cfg = self.cfg
        oxts = read_oxts(self.paths(i)['oxts'])
        lat, lon, yaw = float(oxts[0]), float(oxts[1]), float(oxts[5])
        cam_en = rotate_xy(CAMERA_GPS_OFFSET_M, yaw) if cfg.camera_offset else np.zeros(2)
        sx, sy, theta = self.shifts(i, rng)
        lab = satmap_labels(plane=LocalTangentPlane(lat, lon), camera_en_m=cam_en, yaw_rad=yaw,
                            camera_from_centre_fl_m=(sx * cfg.shift_range_lon_m,
                                                     sy * cfg.shift_range_lat_m),
                            theta=theta, rotation_range_deg=cfg.rotation_range_deg,
                            m_per_px=satmap_m_per_px(lat))
        return {**lab, 'gps_latlon_deg': (lat, lon)}

    def files(self, i: int) -> tuple[Path, Path, int]:
        p = self.paths(i)
        return p['image'], p['satmap'], self.drive_index[self.frames[i].rsplit('/', 1)[0]]
