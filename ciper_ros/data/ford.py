"""Ford Multi-AV cross-view (Shi & Li, CVPR 2022 layout), one log at a time.

Layout::

    <root>/Calibration-V2/V2/cameraFrontLeft_body.yaml     camera pose in the body frame
    <root>/<log>/grd_sat_quaternion_latlon.txt              train:  name q0 q1 q2 q3
                                                            g_lat g_lon s_lat s_lon
    <root>/<log>/grd_sat_quaternion_latlon_test.txt         test: the same + u v theta
    <root>/<log>/<log with '/' -> '-'>-FL/<name>.png        front-left camera frames
    <root>/<log>/SatelliteMaps_18/<s_lat>_<s_lon>.png       north-up, centred on (s_lat, s_lon)

``<log>`` is e.g. ``2017-10-26/V2/Log1``. The quaternion (w, x, y, z) is the body attitude
in a north-east-down world: its yaw is a compass bearing, converted once here to REP-103.

Labels (aerial north-up, REP-103 yaw):

* camera position: the body position (g_lat, g_lon) plus the camera's body-frame offset
  from the calibration file (x forward, y right), rotated by the heading;
* crop: ``side_px`` satellite pixels around the camera minus ``R(yaw) (v * lon_range,
  u * lat_range)`` (u: lateral, v: longitudinal, in [-1, 1], fixed in the test files);
* heading prior: ``yaw - theta * rotation_range``.

Scale: web-mercator zoom 18 at scale 2 from the tile's latitude: 0.2208 m/px at 42.29 deg
(the released code rounds it to 0.22). Metrics are reported per log (``group``).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np

from ciper_ros.data.common import DatasetError, rotate_xy, satmap_labels, SatmapQueries
from ciper_ros.data.kitti import satmap_m_per_px
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.geo.heading import yaw_rad_from_bearing_rad
from ciper_ros.util.errors import UserError

TRAIN_FILE = 'grd_sat_quaternion_latlon.txt'
TEST_FILE = 'grd_sat_quaternion_latlon_test.txt'
SAT_DIR = 'SatelliteMaps_18'
CALIB = Path('Calibration-V2') / 'V2' / 'cameraFrontLeft_body.yaml'


def bearing_rad_from_quaternion(q0: float, q1: float, q2: float, q3: float) -> float:
    """Yaw of a (w, x, y, z) attitude in a north-east-down frame: a compass bearing."""
    return math.atan2(2.0 * (q0 * q3 + q1 * q2), 1.0 - 2.0 * (q2 * q2 + q3 * q3))


def read_camera_offset(path: Path) -> np.ndarray:
    """(forward, left) metres of the camera in the body frame (the file gives x fwd, y right)."""
    import yaml

    if not path.is_file():
        raise DatasetError(f'Ford calibration not found: {path} (or set camera_offset=False)')
    try:
        text = path.read_text()
        if text.startswith('%YAML'):
            text = text.split('\n', 1)[1]
        t = yaml.safe_load(text)['transform']['translation']
        return np.array([float(t['x']), -float(t['y'])])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise DatasetError(f'{path}: no transform.translation x/y ({e})') from None


def discover_logs(root: Path) -> list[str]:
    """Log folders under ``root`` that hold a pose file, as ``day/V2/LogN`` strings."""
    found = {p.parent for p in root.rglob(TRAIN_FILE)} | {p.parent for p in root.rglob(TEST_FILE)}
    return sorted(str(p.relative_to(root)) for p in found)


@dataclass(frozen=True)
class FordConfig:
    split: str = 'train'                  # 'train' or 'test'
    logs: tuple[str, ...] | None = None   # default: every log found under the root
    indices: dict | None = None           # optional {log: [frame indices]} (train selection)
    shift_range_lat_m: float = 20.0
    shift_range_lon_m: float = 20.0
    rotation_range_deg: float = 10.0
    ground_size: tuple[int, int] = (64, 256)
    side_px: int = 512
    aerial_px: int = 128
    camera_offset: bool = True

    def __post_init__(self) -> None:
        if self.split not in ('train', 'test'):
            raise UserError(f"FordConfig.split must be 'train' or 'test', got {self.split!r}")
        if not 0 < self.rotation_range_deg <= 180:
            raise UserError('rotation_range_deg must be in (0, 180]')


class FordDataset(SatmapQueries):
    def __init__(self, root: str | Path, cfg: FordConfig = FordConfig()) -> None:
        self.root = Path(root)
        self.cfg = cfg
        if not self.root.is_dir():
            raise DatasetError(f'Ford root {self.root} is not a directory')
        self.logs = list(cfg.logs) if cfg.logs else discover_logs(self.root)
        if not self.logs:
            raise DatasetError(f'no Ford logs (folders with {TRAIN_FILE}) under {self.root}')
        self.offset_fl = read_camera_offset(self.root / CALIB) if cfg.camera_offset \
            else np.zeros(2)
        test = cfg.split == 'test'
        self.rows: list[tuple] = []
        for li, log in enumerate(self.logs):
            pose_file = self.root / log / (TEST_FILE if test else TRAIN_FILE)
            if not pose_file.is_file():
                raise DatasetError(f'Ford log {log}: {pose_file.name} not found')
            lines = [ln for ln in pose_file.read_text().splitlines() if ln.strip()]
            keep = (cfg.indices or {}).get(log)
            if keep is not None:
                if max(keep, default=-1) >= len(lines):
                    raise DatasetError(f'Ford log {log}: index {max(keep)} beyond its '
                                       f'{len(lines)} frames')
                lines = [lines[k] for k in keep]
            fl_dir = self.root / log / (log.replace('/', '-') + '-FL')
            for n, line in enumerate(lines, 1):
                tok = line.split()
                if len(tok) != (12 if test else 9):
                    raise DatasetError(f'{pose_file}:{n}: expected {12 if test else 9} fields, '
                                       f'got {len(tok)}')
                try:
                    nums = [float(v) for v in tok[1:]]
                except ValueError:
                    raise DatasetError(f'{pose_file}:{n}: pose values are not numbers') \
                        from None
                if not all(math.isfinite(v) for v in nums):
                    raise DatasetError(f'{pose_file}:{n}: non-finite pose value')
                image = fl_dir / tok[0].replace('.txt', '.png')
                sat = self.root / log / SAT_DIR / f'{tok[7]}_{tok[8]}.png'
                shifts = tuple(nums[8:11]) if test else None
                self.rows.append((li, image, sat, nums[:8], shifts))
        if not self.rows:
            raise DatasetError(f'Ford: no frames in {self.logs}')

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self, i: int, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        _, _, _, (q0, q1, q2, q3, g_lat, g_lon, s_lat, s_lon), shifts = self.rows[i]
        yaw = float(yaw_rad_from_bearing_rad(bearing_rad_from_quaternion(q0, q1, q2, q3)))
        plane = LocalTangentPlane(s_lat, s_lon)              # the satellite tile's centre
        body_en = plane.xy_m_from_latlon(np.array([[g_lat, g_lon]]))[0]
        u, v, theta = shifts if shifts is not None else rng.uniform(-1.0, 1.0, 3)
        return satmap_labels(plane=plane, camera_en_m=body_en + rotate_xy(self.offset_fl, yaw),
                             yaw_rad=yaw,
                             camera_from_centre_fl_m=(v * cfg.shift_range_lon_m,
                                                      u * cfg.shift_range_lat_m),
                             theta=theta, rotation_range_deg=cfg.rotation_range_deg,
                             m_per_px=satmap_m_per_px(s_lat))

    def files(self, i: int) -> tuple[Path, Path, int]:
        log_index, image, sat, _, _ = self.rows[i]
        return image, sat, log_index
