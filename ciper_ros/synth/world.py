"""The synthetic city as data: a 2.5-D raster world plus object tables.

Raster layout: square, ``size_px`` x ``size_px`` at ``res_m`` metres per pixel, north-up,
centred on the datum: row 0 is the northern edge, column 0 the western edge. The centre of
pixel (row, col) is at east ``x0_m + (col + 0.5) * res_m``, north ``y1_m - (row + 0.5) *
res_m`` in the map ENU frame.

Layers (static; what the aerial photo and every drive share):
    height_m  (N, N) float16  top surface above ground (buildings, tree crowns), 0 = ground
    kind      (N, N) uint8    surface class (:class:`Kind`)
    obj       (N, N) uint16   object id: 1..B buildings, B+1..B+T trees, 0 none
Parked cars differ between captures ("epochs": 0 = aerial capture, 1.. = drives); they are
a table rasterised per epoch on demand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
import json
import os
from pathlib import Path
import zipfile
import zlib

import cv2
import numpy as np

from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.util.atomic import atomic_path
from ciper_ros.util.errors import CorruptFileError, UserError

FORMAT_VERSION = 1


class Kind(IntEnum):
    OUT = 0
    ROAD = 1
    LANE_MARK = 2
    CENTER_MARK = 3
    CROSSWALK = 4
    SIDEWALK = 5
    GRASS = 6
    PLAZA = 7
    PARKING = 8
    PARKING_MARK = 9
    BUILDING = 10
    TREE = 11


class District(IntEnum):
    DOWNTOWN = 0
    RESIDENTIAL = 1
    INDUSTRIAL = 2


@dataclass(frozen=True)
class CityConfig:
    """Everything that defines a city; the same config gives the same bytes.

    ``appearance``: name of the look (``ciper_ros.synth.appearance.PRESETS``): palettes,
    season, sun, road wear and the aerial provider; it never changes the geometry. World
    files written before it existed load as ``'default'``.
    """

    seed: int = 0
    size_m: float = 600.0
    res_m: float = 0.2
    lat0_deg: float = 48.137
    lon0_deg: float = 11.575
    n_drive_epochs: int = 1
    appearance: str = 'default'

    def __post_init__(self) -> None:
        from ciper_ros.synth.appearance import get_preset  # appearance imports this module

        get_preset(self.appearance)
        if not 100.0 <= self.size_m <= 5000.0:
            raise UserError(f'city size_m must be in [100, 5000] m, got {self.size_m}')
        if not 0.05 <= self.res_m <= 0.5:
            raise UserError(f'city res_m must be in [0.05, 0.5] m/px, got {self.res_m}')
        if self.n_drive_epochs < 1:
            raise UserError('n_drive_epochs must be >= 1')


@dataclass
class Buildings:
    center_xy_m: np.ndarray   # (B, 2) float64
    yaw_rad: np.ndarray       # (B,) orientation of the footprint's first axis
    half_extent_m: np.ndarray  # (B, 2) half sizes along the footprint axes
    height_m: np.ndarray      # (B,)
    facade_rgb: np.ndarray    # (B, 3) uint8
    roof_rgb: np.ndarray      # (B, 3) uint8, independent of the facade
    floor_m: np.ndarray       # (B,) storey height
    bay_m: np.ndarray         # (B,) window bay width


@dataclass
class Trees:
    center_xy_m: np.ndarray   # (T, 2)
    radius_m: np.ndarray      # (T,)
    height_m: np.ndarray      # (T,)
    rgb: np.ndarray           # (T, 3) uint8


@dataclass
class Cars:
    center_xy_m: np.ndarray   # (C, 2)
    yaw_rad: np.ndarray       # (C,)
    size_m: np.ndarray        # (C, 3) length, width, height
    rgb: np.ndarray           # (C, 3) uint8
    epochs: np.ndarray        # (C,) uint8 bit mask: bit e set = parked there in epoch e


@dataclass
class RoadGraph:
    """Drivable road centre lines: nodes and polyline edges (both directions drivable)."""

    nodes_xy_m: np.ndarray            # (V, 2)
    edges: list[tuple[int, int]]      # (node a, node b)
    edge_points_m: list[np.ndarray]   # per edge (n, 2), from node a to node b
    edge_width_m: np.ndarray          # (E,)
    edge_lanes: np.ndarray            # (E,) lanes in total (both directions)


@dataclass
class World:
    config: CityConfig
    height_m: np.ndarray
    kind: np.ndarray
    obj: np.ndarray
    buildings: Buildings
    trees: Trees
    cars: Cars
    roads: RoadGraph
    district_seeds: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    _car_layers: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ geometry
    @property
    def res_m(self) -> float:
        return self.config.res_m

    @property
    def size_px(self) -> int:
        return self.kind.shape[0]

    @property
    def x0_m(self) -> float:
        return -self.size_px * self.res_m / 2.0

    @property
    def y1_m(self) -> float:
        return self.size_px * self.res_m / 2.0

    @property
    def plane(self) -> LocalTangentPlane:
        return LocalTangentPlane(self.config.lat0_deg, self.config.lon0_deg)

    @property
    def n_buildings(self) -> int:
        return len(self.buildings.height_m)

    def px_from_xy(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous (col, row) pixel coordinates of ENU points (pixel centres at +0.5)."""
        return ((np.asarray(x_m) - self.x0_m) / self.res_m,
                (self.y1_m - np.asarray(y_m)) / self.res_m)

    def index(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest (row, col) of ENU points, clipped, and a mask of points inside the world."""
        col, row = self.px_from_xy(x_m, y_m)
        col = np.floor(col).astype(np.int64)
        row = np.floor(row).astype(np.int64)
        n = self.size_px
        inside = (col >= 0) & (col < n) & (row >= 0) & (row < n)
        return np.clip(row, 0, n - 1), np.clip(col, 0, n - 1), inside

    def flat_index(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat raster index (row * N + col) of ENU points, clipped, and an inside mask.

        ``np.take(layer.ravel(), idx)`` gathers much faster than 2-D fancy indexing.
        """
        row, col, inside = self.index(x_m, y_m)
        return row * self.size_px + col, inside

    # ------------------------------------------------------------------ cars per epoch
    def car_layer(self, epoch: int) -> np.ndarray:
        """(N, N) uint16: index + 1 of the car parked on each pixel in ``epoch``, 0 = none."""
        if epoch not in self._car_layers:
            if not 0 <= epoch <= self.config.n_drive_epochs:
                raise UserError(f'epoch {epoch} does not exist (0 = aerial, 1..'
                                 f'{self.config.n_drive_epochs} = drives)')
            layer = np.zeros(self.kind.shape, np.uint16)
            cars = self.cars
            present = np.flatnonzero((cars.epochs >> epoch) & 1)
            for i in present:
                corners = box_corners(cars.center_xy_m[i], cars.yaw_rad[i],
                                      cars.size_m[i, 0] / 2, cars.size_m[i, 1] / 2)
                col, row = self.px_from_xy(corners[:, 0], corners[:, 1])
                pts = np.round(np.stack([col, row], -1) * 16 - 8).astype(np.int32)
                cv2.fillPoly(layer, [pts], int(i) + 1, lineType=cv2.LINE_8, shift=4)
            self._car_layers[epoch] = layer
        return self._car_layers[epoch]

    @property
    def car_height_m(self) -> np.ndarray:
        """(C + 1,) float32 car heights indexed by car-layer value (0 = no car: 0 m)."""
        return np.concatenate([[0.0], self.cars.size_m[:, 2]]).astype(np.float32)

    @property
    def car_rgb01(self) -> np.ndarray:
        """(C + 1, 3) float32 car colours in [0, 1] indexed by car-layer value."""
        return np.concatenate([[[0, 0, 0]], self.cars.rgb]).astype(np.float32) / 255.0

    def surface_height_m(self, epoch: int) -> np.ndarray:
        """(N, N) float32 top surface of ``epoch``: static heights with its parked cars."""
        return np.maximum(self.height_m.astype(np.float32),
                          self.car_height_m[self.car_layer(epoch)])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the world as one .npz (arrays + JSON config), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {'height_m': self.height_m, 'kind': self.kind, 'obj': self.obj,
                  'district_seeds': self.district_seeds,
                  'roads_nodes_xy_m': self.roads.nodes_xy_m,
                  'roads_edges': np.asarray(self.roads.edges, np.int64).reshape(-1, 2),
                  'roads_edge_width_m': self.roads.edge_width_m,
                  'roads_edge_lanes': self.roads.edge_lanes,
                  'roads_edge_npoints': np.array([len(p) for p in self.roads.edge_points_m]),
                  'roads_edge_points_m': np.concatenate(self.roads.edge_points_m)
                  if self.roads.edge_points_m else np.zeros((0, 2))}
        for prefix, table in (('buildings', self.buildings), ('trees', self.trees),
                              ('cars', self.cars)):
            for key, value in asdict(table).items():
                arrays[f'{prefix}_{key}'] = value
        meta = {'format_version': FORMAT_VERSION, 'config': asdict(self.config)}
        arrays['meta_json'] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        with atomic_path(path, suffix='.npz') as tmp:
            np.savez(tmp, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> World:
        """Read a city written by :meth:`save`; a damaged file is a :class:`CorruptFileError`."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f'city file {path} does not exist'
                            + (' (it is a directory)' if path.is_dir() else ''))
        try:
            # read every array now: np.load opens the archive lazily, and a member damaged
            # or cut short would otherwise fail later, deep inside rendering
            with np.load(path, allow_pickle=False) as npz:
                z = {k: npz[k] for k in npz.files}
            meta = json.loads(bytes(z['meta_json']).decode())
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
                zlib.error) as e:
            raise CorruptFileError(f'corrupt city file {path} ({path.stat().st_size} bytes): '
                                   'truncated, damaged or not a ciper synthetic city file '
                                   f'({type(e).__name__}: {e}); regenerate it (ciper synth '
                                   'city)') from None
        if meta.get('format_version') != FORMAT_VERSION:
            raise UserError(f'{path} has city format {meta.get("format_version")}, this '
                            f'version reads {FORMAT_VERSION}; regenerate it')
        try:
            return cls._from_arrays(z, meta)
        except UserError:   # a valid file this version cannot read (e.g. an unknown preset)
            raise
        except (KeyError, TypeError, ValueError) as e:   # arrays missing or misshapen
            raise CorruptFileError(f'corrupt city file {path}: its arrays do not make a '
                                   f'city ({type(e).__name__}: {e}); regenerate it') from None

    @classmethod
    def _from_arrays(cls, z: dict, meta: dict) -> World:
        def table(cls_, prefix):
            return cls_(**{k: z[f'{prefix}_{k}'] for k in cls_.__dataclass_fields__})
        splits = np.cumsum(z['roads_edge_npoints'])[:-1]
        roads = RoadGraph(
            nodes_xy_m=z['roads_nodes_xy_m'],
            edges=[tuple(int(v) for v in e) for e in z['roads_edges']],
            edge_points_m=list(np.split(z['roads_edge_points_m'], splits))
            if len(z['roads_edge_npoints']) else [],
            edge_width_m=z['roads_edge_width_m'], edge_lanes=z['roads_edge_lanes'])
        return cls(config=CityConfig(**meta['config']), height_m=z['height_m'],
                   kind=z['kind'], obj=z['obj'], buildings=table(Buildings, 'buildings'),
                   trees=table(Trees, 'trees'), cars=table(Cars, 'cars'), roads=roads,
                   district_seeds=z['district_seeds'])

def box_corners(center_xy: np.ndarray, yaw_rad: float, half_a: float,
                half_b: float) -> np.ndarray:
    """(4, 2) corners of an oriented box (axis a along yaw), counter-clockwise."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    a = np.array([c, s]) * half_a
    b = np.array([-s, c]) * half_b
    center = np.asarray(center_xy, np.float64)
    return np.stack([center - a - b, center + a - b, center + a + b, center - a + b])
