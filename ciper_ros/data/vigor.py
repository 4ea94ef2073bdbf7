"""VIGOR (Zhu et al., CVPR 2021): street-view panoramas against 640 px satellite tiles.

Layouts read (the first one found wins, per city):

* original: ``<root>/<City>/panorama/*.jpg`` and ``<root>/<City>/satellite/*.png``
* reorganised: ``<root>/ground/<City>/`` (or ``<root>/<City>/ground/``) and
  ``<root>/satellite/<City>/``

Labels live in ``<root>/<label_root>/<City>/``: ``satellite_list.txt``,
``same_area_balanced_{train,test}.txt`` and ``pano_label_balanced.txt`` (cross-area). With
``label_root='auto'`` the corrected labels (``splits__corrected``, as published with
SliceMatch; file names may carry a ``__corrected`` suffix) are preferred over ``splits``.

A label line is ``pano sat1 dr1 dc1 sat2 dr2 dc2 sat3 dr3 dc3 sat4 dr4 dc4``: the positive
and three semi-positives, each with the satellite-minus-panorama offset in 640 px tile
pixels. The camera is at pixel row ``320 + dr``, column ``320 - dc`` of that tile, so its
offset from the tile centre is ``(-dc, -dr) * m_per_px`` metres east/north.

Metric scale: tiles are web-mercator zoom 20, 640 px; ``m_per_px`` comes from the tile's
own latitude (its file name ``satellite_<lat>_<lon>.png``), never from the 512 px tile
size the released CIPER code used. Panoramas are north-aligned: the centre column faces
north (yaw pi/2); an unknown heading is simulated by rolling whole columns.

Splits: same-area (all four cities, ``same_area_balanced_{train,test}``) and cross-area
(train on NewYork + Seattle, test on SanFrancisco + Chicago, ``pano_label_balanced``).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np

from ciper_ros.data.common import (
    DatasetError,
    Gallery,
    make_item,
    read_image,
    resize,
    to_tensor_image,
)
from ciper_ros.data.transforms import heading_prior, limit_fov, roll_panorama
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.geo.mercator import (
    global_px_from_latlon,
    ground_resolution_m_per_px,
    latlon_from_global_px,
)
from ciper_ros.util.errors import UserError

CITIES = ('NewYork', 'Seattle', 'SanFrancisco', 'Chicago')
CROSS_AREA_CITIES = {'train': ('NewYork', 'Seattle'), 'test': ('SanFrancisco', 'Chicago')}
TILE_PX = 640
ZOOM = 20
LABEL_ROOTS = ('splits__corrected', 'splits_corrected', 'splits_new', 'splits')


def satellite_latlon(name: str) -> tuple[float, float]:
    """Centre of a tile from its file name ``satellite_<lat>_<lon>.png``."""
    stem = Path(name).stem
    parts = stem.split('_')
    try:
        if parts[0] != 'satellite' or len(parts) != 3:
            raise ValueError
        return float(parts[1]), float(parts[2])
    except ValueError:
        raise DatasetError(f'satellite file name {name!r} is not satellite_<lat>_<lon>.png') \
            from None


def panorama_latlon(name: str) -> tuple[float, float]:
    """Camera position from a panorama file name ``<id>,<lat>,<lon>,.jpg``."""
    parts = Path(name).name.split(',')
    try:
        return float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise DatasetError(f'panorama file name {name!r} is not <id>,<lat>,<lon>,.jpg') \
            from None


def tile_m_per_px(sat_name: str) -> float:
    return float(ground_resolution_m_per_px(satellite_latlon(sat_name)[0], ZOOM))


@dataclass(frozen=True)
class VigorConfig:
    area: str = 'same'                 # 'same' or 'cross'
    split: str = 'train'               # 'train' or 'test'
    label_root: str = 'auto'
    cities: tuple[str, ...] | None = None   # default: the split's cities
    ground_size: tuple[int, int] = (64, 256)
    aerial_px: int = 128
    heading: str = 'unknown'           # 'unknown' (random roll), 'prior', 'north' (no roll)
    heading_prior_deg: float = 10.0
    fov_deg: float = 360.0
    semi_positives: bool = False       # train on semi-positive tiles too (camera inside)

    def __post_init__(self) -> None:
        for name, allowed in (('area', ('same', 'cross')), ('split', ('train', 'test')),
                              ('heading', ('unknown', 'prior', 'north'))):
            if getattr(self, name) not in allowed:
                raise UserError(f'VigorConfig.{name} must be one of {allowed}, '
                                 f'got {getattr(self, name)!r}')


class VigorDataset:
    """VIGOR queries in the common item schema, plus the split's satellite gallery."""

    def __init__(self, root: str | Path, cfg: VigorConfig = VigorConfig()) -> None:
        self.root = Path(root)
        self.cfg = cfg
        if not self.root.is_dir():
            raise DatasetError(f'VIGOR root {self.root} is not a directory')
        if cfg.cities is not None:
            cities = tuple(cfg.cities)
        elif cfg.area == 'same':
            cities = CITIES
        else:
            cities = CROSS_AREA_CITIES[cfg.split]
        self.cities = cities
        self.label_dir = self._label_root()
        self.sat_paths: list[Path] = []
        sat_index: dict[tuple[str, str], int] = {}
        sat_city: list[int] = []
        pano_paths, labels, deltas, pano_city = [], [], [], []
        for ci, city in enumerate(cities):
            pano_dir, sat_dir = self._city_dirs(city)
            for name in self._satellite_list(city, sat_dir):
                sat_index[(city, name)] = len(self.sat_paths)
                self.sat_paths.append(sat_dir / name)
                sat_city.append(ci)
            label_file = self._label_file(city)
            for n, line in enumerate(label_file.read_text().splitlines(), 1):
                tok = line.split()
                if not tok:
                    continue
                if len(tok) != 13:
                    raise DatasetError(f'{label_file}:{n}: expected 13 fields (pano, then 4 x '
                                       f'sat d_row d_col), got {len(tok)}')
                try:
                    idx = [sat_index[(city, tok[i])] for i in (1, 4, 7, 10)]
                    d = [[float(tok[i]), float(tok[i + 1])] for i in (2, 5, 8, 11)]
                except KeyError as e:
                    raise DatasetError(f'{label_file}:{n}: satellite {e.args[0][1]} is not in '
                                       f'{city} satellite_list.txt') from None
                except ValueError:
                    raise DatasetError(f'{label_file}:{n}: offsets are not numbers') from None
                pano_paths.append(pano_dir / tok[0])
                labels.append(idx)
                deltas.append(d)
                pano_city.append(ci)
        if not pano_paths:
            raise DatasetError(f'no VIGOR queries for {cities} under {self.label_dir}')
        self.pano_paths = pano_paths
        self.labels = np.asarray(labels, np.int64)          # (Q, 4) positive first
        self.deltas = np.asarray(deltas, np.float64)        # (Q, 4, 2) (d_row, d_col)
        self.pano_city = np.asarray(pano_city, np.int64)
        self.sat_city = np.asarray(sat_city, np.int64)

    # ------------------------------------------------------------------ layout
    def _label_root(self) -> Path:
        names = LABEL_ROOTS if self.cfg.label_root == 'auto' else (self.cfg.label_root,)
        for name in names:
            if (self.root / name).is_dir():
                return self.root / name
        raise DatasetError(f'no VIGOR label folder under {self.root} (looked for '
                           f'{", ".join(names)})')

    def _city_dirs(self, city: str) -> tuple[Path, Path]:
        r = self.root
        pano = [r / city / 'panorama', r / 'ground' / city, r / city / 'ground']
        sat = [r / city / 'satellite', r / 'satellite' / city]
        found_p = next((p for p in pano if p.is_dir()), None)
        found_s = next((p for p in sat if p.is_dir()), None)
        if found_p is None or found_s is None:
            missing = pano if found_p is None else sat
            raise DatasetError(f'VIGOR {city}: none of {", ".join(map(str, missing))} exists')
        return found_p, found_s

    def _satellite_list(self, city: str, sat_dir: Path) -> list[str]:
        listed = self.label_dir / city / 'satellite_list.txt'
        if listed.is_file():
            return [s.strip() for s in listed.read_text().splitlines() if s.strip()]
        return sorted(p.name for p in sat_dir.glob('satellite_*.png'))

    def _label_file(self, city: str) -> Path:
        if self.cfg.area == 'same':
            base = f'same_area_balanced_{self.cfg.split}'
        else:
            base = 'pano_label_balanced'
        for name in (f'{base}__corrected.txt', f'{base}.txt'):
            p = self.label_dir / city / name
            if p.is_file():
                return p
        raise DatasetError(f'VIGOR {city}: no {base}.txt in {self.label_dir / city}')

    # ------------------------------------------------------------------ labels
    def m_per_px(self, sat: int) -> float:
        return tile_m_per_px(self.sat_paths[sat].name)

    def camera_offset_m(self, i: int, k: int = 0) -> np.ndarray:
        """Camera minus tile centre (east, north) metres, for tile k (0: the positive).

        The label's pixel offset is taken in web-mercator pixels around the tile centre and
        converted through geodesy to local ENU metres; the single spherical m/px of the
        tile would be off by up to 0.3 % (north-south) against the WGS84 ellipsoid.
        """
        d_row, d_col = self.deltas[i, k]
        s_lat, s_lon = satellite_latlon(self.sat_paths[int(self.labels[i, k])].name)
        x, y = global_px_from_latlon(s_lat, s_lon, ZOOM)
        lat, lon = latlon_from_global_px(x - d_col, y + d_row, ZOOM)
        plane = LocalTangentPlane(s_lat, s_lon)
        return plane.xy_m_from_latlon(np.array([[float(lat), float(lon)]]))[0]

    def gt_pixel(self, i: int, k: int = 0) -> tuple[float, float]:
        """(row, col) of the camera on the 640 px tile k, as the VIGOR protocol defines it."""
        d_row, d_col = self.deltas[i, k]
        return TILE_PX / 2 + d_row, TILE_PX / 2 - d_col

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.pano_paths)

    def __getitem__(self, i: int) -> dict:
        # evaluation: positive tile, heading drawn per query from a fixed seed (reproducible)
        return self.sample(i, np.random.default_rng([17, i]), use_semi=False)

    def sample(self, i: int, rng: np.random.Generator, *, use_semi: bool | None = None) -> dict:
        cfg = self.cfg
        k = 0
        if (cfg.semi_positives if use_semi is None else use_semi):
            inside = [j for j in range(4) if np.all(np.abs(self.deltas[i, j]) < TILE_PX / 2)]
            k = int(rng.choice(inside)) if inside else 0
        sat = int(self.labels[i, k])
        pano = read_image(self.pano_paths[i])
        yaw = math.pi / 2                      # north-aligned: the centre column faces north
        if cfg.heading != 'north':
            pano, yaw = roll_panorama(pano, yaw, int(rng.integers(pano.shape[1])))
        if cfg.fov_deg < 360.0:
            pano, yaw = limit_fov(pano, yaw, cfg.fov_deg)
        prior = heading_prior(yaw, cfg.heading_prior_deg, rng) if cfg.heading == 'prior' \
            else math.nan
        ground = resize(pano, *cfg.ground_size)
        tile = read_image(self.sat_paths[sat])
        if tile.shape[0] != tile.shape[1]:
            raise DatasetError(f'{self.sat_paths[sat]}: satellite tile is not square '
                               f'({tile.shape[1]}x{tile.shape[0]})')
        m = self.m_per_px(sat) * TILE_PX / tile.shape[0]   # tiles resized by the user keep m
        aerial = resize(tile, cfg.aerial_px, cfg.aerial_px)
        return make_item(ground=ground, aerial=aerial, offset_xy_m=self.camera_offset_m(i, k),
                         yaw_rad=yaw, yaw_prior_rad=prior, half_side_m=m * tile.shape[0] / 2,
                         camera_latlon_deg=panorama_latlon(self.pano_paths[i].name),
                         group=int(self.pano_city[i]))

    # ------------------------------------------------------------------ retrieval
    def gallery(self) -> Gallery:
        """All satellite tiles of the split's cities; positives and semi-positives per query."""
        G = len(self.sat_paths)
        semi = np.zeros((len(self), G), bool)
        semi[np.arange(len(self))[:, None], self.labels[:, 1:]] = True
        px = self.cfg.aerial_px

        def load(j: int):
            return to_tensor_image(resize(read_image(self.sat_paths[j]), px, px))

        return Gallery(size=G, load=load,
                       centre_latlon_deg=np.array([satellite_latlon(p.name)
                                                   for p in self.sat_paths]),
                       group=self.sat_city.copy(),
                       half_side_m=np.array([tile_m_per_px(p.name) * TILE_PX / 2
                                             for p in self.sat_paths]),
                       positives=self.labels[:, 0].copy(), semi_positives=semi,
                       per_group=False)

