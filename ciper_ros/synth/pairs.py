"""Cross-view training pairs from synthetic cities: on the fly, or from pre-rendered shards.

A *render* is one ground image plus a large aerial crop centred on the camera. A *pair* is
drawn from a render on the fly: the aerial crop window is offset (VIGOR style: camera
anywhere in the central part of a grid-like crop; KITTI style: crop centred on a noisy GNSS
fix) and, for panoramas, the image is rolled by whole columns, which is exactly the
panorama at another heading. So one render yields many distinct pairs.

Labels (the model target): ``offset_xy_m`` = camera position minus crop centre, east/north
metres in the crop's frame; ``yaw_rad`` = REP-103 heading of the camera; ``yaw_prior_rad``
= a heading prior (NaN when the heading is unknown).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import math
import os
from pathlib import Path

import numpy as np

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.synth.roads import arc_length, point_on_polyline
from ciper_ros.util.atomic import atomic_path, atomic_write_text
from ciper_ros.util.config import json_plain
from ciper_ros.util.errors import UserError

# city seeds per split: disjoint by construction
SPLIT_SEED_BASE = {'test': 0, 'val': 500, 'train': 1000}


def city_seeds(split: str, n: int) -> list[int]:
    """``n`` city seeds of a split ('train', 'val', 'test'); the splits never overlap."""
    if split not in SPLIT_SEED_BASE:
        raise UserError(f'split must be one of {sorted(SPLIT_SEED_BASE)}, got {split!r}')
    if split != 'train' and n > 500:
        raise UserError(f'at most 500 {split} cities')
    return [SPLIT_SEED_BASE[split] + i for i in range(n)]


RIG_PRIOR_BELOW = 0.67      # rigs seeing less of the azimuths train with a heading prior


@dataclass(frozen=True)
class PairConfig:
    style: str = 'vigor'            # 'vigor' or 'kitti'
    ground: str = 'panorama'        # 'panorama' or 'pinhole'
    pano_width: int = 256
    pano_height: int = 64
    pinhole_width: int = 256
    pinhole_height: int = 128
    pinhole_hfov_deg: float = 90.0
    heading: str = 'unknown'        # 'unknown' or 'prior'
    heading_prior_deg: float = 10.0
    aerial_side_m: float = 64.0
    aerial_side_px: int = 128
    vigor_central_fraction: float = 0.5   # camera within this central part of the crop
    kitti_gnss_sigma_m: float = 5.0
    # panoramas cut to a forward camera's footprint (one model for both kinds of camera):
    # this share of pairs, a level camera of a random FoV and aspect, heading prior on them
    limited_fov_prob: float = 0.0
    limited_hfov_deg: tuple[float, float] = (75.0, 110.0)
    limited_aspect: tuple[float, float] = (1.3, 2.0)       # width / height
    limited_fov_heading_prior: bool = True
    # panoramas cut to a camera rig's footprint (where no forward cut was drawn): a ring
    # of 2-6 level cameras at even azimuth steps, each of a random FoV in limited_hfov_deg
    # and one aspect in limited_aspect, rotated at random and sometimes one camera missing;
    # a heading prior (as on forward cuts) when the rig sees less than RIG_PRIOR_BELOW of
    # the azimuths (a front + rear pair)
    rig_fov_prob: float = 0.0
    rig_cameras: tuple[int, int] = (2, 6)
    # a second crop of the same render with the camera outside the crop's central half
    # (where the runtime's neighbouring tiles see it): the confidence learns "not here"
    negative_crops: bool = False
    negative_min_fraction: float = 0.6     # camera offset >= this x half-side (0.5: the edge
    #                                        of the central half) on one axis at least
    # a crop of the same city centred 30-150 m from the camera, cut when the render is made:
    # the hard retrieval negative (same streets, another place) and a "no match" example
    far_negatives: bool = False
    far_negative_range_m: tuple[float, float] = (30.0, 150.0)

    def __post_init__(self) -> None:
        for name, allowed in (('style', ('vigor', 'kitti')), ('ground', ('panorama', 'pinhole')),
                              ('heading', ('unknown', 'prior'))):
            if getattr(self, name) not in allowed:
                raise UserError(f'PairConfig.{name} must be one of {allowed}, got '
                                 f'{getattr(self, name)!r}')

    @classmethod
    def for_model(cls, model_config, **overrides) -> PairConfig:
        """Pairs sized for a model (ground kind and size, FoV, aerial pixels), plus overrides.

        ``model_config``: the model's :class:`~ciper_ros.model.config.ModelConfig`.
        """
        mc = model_config
        h, w = mc.ground_size
        return cls(**{'ground': mc.ground, 'pano_height': h, 'pano_width': w,
                      'pinhole_height': h, 'pinhole_width': w,
                      'pinhole_hfov_deg': mc.hfov_deg,
                      'aerial_side_px': mc.aerial_size[0], **overrides})

    @property
    def render_side_px(self) -> int:
        """Side of the stored aerial crop: twice the pair crop, so any offset fits."""
        return 2 * self.aerial_side_px

    @property
    def m_per_px(self) -> float:
        return self.aerial_side_m / self.aerial_side_px

    @property
    def camera(self) -> PinholeCamera:
        return PinholeCamera.from_hfov(self.pinhole_width, self.pinhole_height,
                                       self.pinhole_hfov_deg)


@dataclass
class Render:
    """One ground image and an aerial crop (2x the pair crop) centred on the camera."""

    ground: np.ndarray     # (H, W, 3) uint8; panoramas are rendered at yaw 0
    aerial: np.ndarray     # (2S, 2S, 3) uint8, north-up, camera at the centre
    yaw_rad: float         # heading the ground image was rendered at (0 for panoramas)
    camera_latlon_deg: tuple[float, float]
    city_seed: int
    aerial_far: np.ndarray | None = None   # (S, S, 3) crop 30-150 m away (far_negatives)


def draw_pair(render: Render, cfg: PairConfig, rng: np.random.Generator) -> dict:
    """Draw one labelled pair from a render (crop offset, panorama roll, heading prior)."""
    S = cfg.aerial_side_px
    m = cfg.m_per_px
    # camera offset from the crop centre, in whole aerial pixels (exact metric shift)
    if cfg.style == 'vigor':
        half = cfg.vigor_central_fraction * S / 2.0
        off_px = rng.uniform(-half, half, 2)
    else:
        off_px = np.clip(rng.normal(0.0, cfg.kitti_gnss_sigma_m / m, 2), -S / 2 + 4, S / 2 - 4)
    du, dv = int(round(off_px[0])), int(round(off_px[1]))   # camera at (S/2 + du, S/2 + dv)
    aerial = _window(render.aerial, S, du, dv)
    offset_xy_m = np.array([du * m, -dv * m])
    negative = _negative_crop(render.aerial, S, cfg.negative_min_fraction, rng) \
        if cfg.negative_crops else None
    ground = render.ground
    yaw = render.yaw_rad
    if cfg.ground == 'panorama':
        w = ground.shape[1]
        k = int(rng.integers(w)) if cfg.heading == 'unknown' else \
            int(round(rng.uniform(-math.pi, math.pi) * w / (2 * math.pi)))
        ground = np.roll(ground, k, axis=1)
        yaw = math.remainder(render.yaw_rad + 2 * math.pi * k / w, 2 * math.pi)
    limited = cfg.ground == 'panorama' and cfg.limited_fov_prob > 0 and \
        rng.random() < cfg.limited_fov_prob
    if limited:       # what a forward camera resampled into the panorama would show
        from ciper_ros.geo.reproject import pinhole_footprint

        aspect = rng.uniform(*cfg.limited_aspect)
        cam = PinholeCamera.from_hfov(640, max(int(round(640 / aspect)), 2),
                                      float(rng.uniform(*cfg.limited_hfov_deg)))
        mask = pinhole_footprint(cam, width=ground.shape[1], height=ground.shape[0])
        ground = ground * mask[..., None].astype(ground.dtype)
    rig = cfg.ground == 'panorama' and not limited and cfg.rig_fov_prob > 0 and \
        rng.random() < cfg.rig_fov_prob
    if rig:           # what a camera rig resampled into the panorama would show
        mask = random_rig_footprint(cfg, rng, width=ground.shape[1], height=ground.shape[0])
        ground = ground * mask[..., None].astype(ground.dtype)
        limited = bool(mask.any(axis=0).mean() < RIG_PRIOR_BELOW)   # narrow: heading prior
    prior = math.nan
    if cfg.heading == 'prior' or (limited and cfg.limited_fov_heading_prior):
        prior = math.remainder(yaw + math.radians(rng.uniform(-cfg.heading_prior_deg,
                                                               cfg.heading_prior_deg)),
                               2 * math.pi)
    out = {'ground': np.ascontiguousarray(ground), 'aerial': np.ascontiguousarray(aerial),
           'offset_xy_m': offset_xy_m.astype(np.float32), 'yaw_rad': np.float32(yaw),
           'yaw_prior_rad': np.float32(prior), 'm_per_px': np.float32(m),
           'city_seed': render.city_seed,
           'camera_latlon_deg': np.asarray(render.camera_latlon_deg, np.float64)}
    if negative is not None:
        out['aerial_negative'] = negative
    if render.aerial_far is not None:
        out['aerial_far'] = np.ascontiguousarray(render.aerial_far)
    return out


def random_rig_footprint(cfg: PairConfig, rng: np.random.Generator, *, width: int,
                         height: int) -> np.ndarray:
    """(height, width) bool: the panorama pixels a random camera rig sees (training cuts)."""
    from ciper_ros.geo.camera import RigCamera
    from ciper_ros.geo.reproject import rig_footprint

    n = int(rng.integers(cfg.rig_cameras[0], cfg.rig_cameras[1] + 1))
    aspect = rng.uniform(*cfg.limited_aspect)
    h = max(int(round(640 / aspect)), 2)
    start = float(rng.uniform(-math.pi, math.pi)) if rng.random() < 0.5 else 0.0
    drop = int(rng.integers(n)) if n > 2 and rng.random() < 0.2 else -1
    rig = [RigCamera(camera=PinholeCamera.from_hfov(640, h, float(
        rng.uniform(*cfg.limited_hfov_deg))), yaw_rad=start + 2 * math.pi * i / n)
        for i in range(n) if i != drop]
    return rig_footprint(rig, width=width, height=height)


def _negative_crop(big: np.ndarray, S: int, min_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Cut an (S, S) crop of a 2S render with the camera outside the crop's central half.

    The camera is at the render's centre; in the crop its offset is >= ``min_fraction`` x
    S/2 on one axis and < S/2 on both.
    """
    lo, hi = int(math.ceil(min_fraction * S / 2)), S // 2 - 1
    far = int(rng.integers(lo, hi + 1)) * (1 if rng.random() < 0.5 else -1)
    near = int(rng.integers(-hi, hi + 1))
    du, dv = (far, near) if rng.random() < 0.5 else (near, far)
    return np.ascontiguousarray(_window(big, S, du, dv))


def _window(big: np.ndarray, S: int, du: int, dv: int) -> np.ndarray:
    """Cut the (S, S) window of a 2S render that puts its centre camera at (S/2+du, S/2+dv)."""
    c0, r0 = S - S // 2 - du, S - S // 2 - dv
    return big[r0:r0 + S, c0:c0 + S]


class CitySource:
    """Renders from one city: its world, aerial map and a ground renderer (lazy, per process)."""

    def __init__(self, world_path: str | os.PathLike, map_path: str | os.PathLike) -> None:
        self.world_path = Path(world_path)
        self.map_path = Path(map_path)
        self._pid = None
        self._world = self._renderer = self._store = None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> CitySource:
        """Source of a folder made by ``ciper synth city`` (see ``synth/folder.py``)."""
        from ciper_ros.synth.folder import city_paths

        return cls(*city_paths(folder))

    def _open(self) -> None:
        if self._pid != os.getpid():
            from ciper_ros.maps import open_store
            from ciper_ros.synth.render import GroundRenderer
            from ciper_ros.synth.world import World
            self._world = World.load(self.world_path)
            self._renderer = GroundRenderer(self._world, epoch=1)
            self._store = open_store(self.map_path)
            self._pid = os.getpid()

    def render(self, cfg: PairConfig, rng: np.random.Generator) -> Render:
        from ciper_ros.synth.render import CameraPose

        self._open()
        w = self._world
        xy, yaw = sample_road_pose(w, rng, margin_m=cfg.aerial_side_m * 1.2)
        z = float(rng.uniform(1.4, 2.0))
        if cfg.ground == 'panorama':
            ground = self._renderer.panorama(CameraPose(xy[0], xy[1], 0.0, z_m=z),
                                             width=cfg.pano_width, height=cfg.pano_height)
            yaw = 0.0
        else:
            pose = CameraPose(xy[0], xy[1], yaw, z_m=z,
                              pitch_rad=math.radians(rng.normal(0, 1.0)),
                              roll_rad=math.radians(rng.normal(0, 0.7)))
            ground = self._renderer.pinhole(pose, cfg.camera)
        latlon = w.plane.latlon_from_xy_m(xy)[0]
        crop = self._store.crop((latlon[0], latlon[1]), 2 * cfg.aerial_side_m,
                                cfg.render_side_px)
        far = None
        if cfg.far_negatives:
            far_xy = far_point(w, xy, rng, range_m=cfg.far_negative_range_m,
                               margin_m=cfg.aerial_side_m / 2.0)
            far_latlon = w.plane.latlon_from_xy_m(far_xy[None])[0]
            far = self._store.crop((float(far_latlon[0]), float(far_latlon[1])),
                                   cfg.aerial_side_m, cfg.aerial_side_px).image_rgb
        return Render(ground=ground, aerial=crop.image_rgb, yaw_rad=float(yaw),
                      camera_latlon_deg=(float(latlon[0]), float(latlon[1])),
                      city_seed=w.config.seed, aerial_far=far)


def far_point(world, xy_m: np.ndarray, rng: np.random.Generator, *,
              range_m: tuple[float, float], margin_m: float) -> np.ndarray:
    """Draw a point ``range_m`` (min, max) from ``xy_m``, a crop margin inside the city.

    Directions are uniform; when the city is too small for the whole range, the farthest
    inside point of 64 tries is taken (never the camera's own place).
    """
    half = world.size_px * world.res_m / 2.0 - margin_m
    best, best_d = None, -1.0
    for _ in range(64):
        d = float(rng.uniform(*range_m))
        a = float(rng.uniform(-math.pi, math.pi))
        p = np.asarray(xy_m, np.float64) + d * np.array([math.cos(a), math.sin(a)])
        p_in = np.clip(p, -half, half)
        if np.allclose(p, p_in):
            return p
        dist = float(np.hypot(*(p_in - xy_m)))
        if dist > best_d:
            best, best_d = p_in, dist
    return best


def sample_road_pose(world, rng: np.random.Generator, *,
                     margin_m: float) -> tuple[np.ndarray, float]:
    """Sample a vehicle-like camera pose: in a driving lane, heading along the road."""
    g = world.roads
    half = world.size_px * world.res_m / 2.0 - margin_m
    for _ in range(1000):
        e = int(rng.integers(len(g.edges)))
        pts = g.edge_points_m[e]
        s = arc_length(pts)
        p, d = point_on_polyline(pts, s, rng.uniform(0, s[-1]))
        if np.any(np.abs(p) > half):
            continue
        if rng.random() < 0.5:
            d = -d
        w = g.edge_width_m[e]
        lane = (w / 2 - 2.0) / (4.0 if w >= 14.0 else 2.0)
        p = p + np.array([d[1], -d[0]]) * lane * rng.uniform(0.6, 1.4)
        yaw = math.atan2(d[1], d[0]) + math.radians(rng.normal(0, 3.0))
        return p, math.remainder(yaw, 2 * math.pi)
    raise UserError('no road inside the city margin; the city is too small for this crop')


class SyntheticPairs:
    """Map-style dataset rendering pairs on the fly (use in DataLoader workers).

    Item ``i`` is deterministic: city ``i % len(sources)``, random state from (seed, i).
    """

    def __init__(self, sources: list[CitySource], cfg: PairConfig, *, length: int,
                 seed: int = 0) -> None:
        if not sources:
            raise UserError('need at least one city')
        self.sources, self.cfg, self.length, self.seed = sources, cfg, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        render = self.sources[i % len(self.sources)].render(self.cfg, rng)
        return draw_pair(render, self.cfg, rng)


# ---------------------------------------------------------------------------- shards
MANIFEST = 'manifest.json'
RENDER_FIELDS = ('ground', 'pano_width', 'pano_height', 'pinhole_width', 'pinhole_height',
                 'pinhole_hfov_deg', 'aerial_side_m', 'aerial_side_px', 'far_negatives',
                 'far_negative_range_m')
# render fields older manifests lack, with the value their renders were made with
RENDER_FIELD_DEFAULTS = {'far_negatives': False, 'far_negative_range_m': [30.0, 150.0]}


def write_shards(out_dir: str | os.PathLike, sources: list[CitySource], cfg: PairConfig, *,
                 n_renders: int, shard_size: int = 128, seed: int = 0,
                 progress: bool = True) -> Path:
    """Pre-render ``n_renders`` renders into npz shards plus a JSON manifest.

    Each shard is written atomically and recorded in the manifest only when complete, so an
    interrupted run resumes where it stopped (same seed: same renders).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    spec = {'pair_config': asdict(cfg), 'seed': seed, 'n_renders': n_renders,
            'shard_size': shard_size,
            'cities': [[str(s.world_path), str(s.map_path)] for s in sources]}
    manifest = {'format_version': 1, **spec, 'shards': []}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        # renders depend on these; draw-time options (offsets, headings, FoV cuts) do not
        same = {k: old.get(k) for k in spec if k != 'pair_config'} == \
            {k: v for k, v in spec.items() if k != 'pair_config'} and all(
                json_plain(old['pair_config'].get(k, RENDER_FIELD_DEFAULTS.get(k)))
                == json_plain(spec['pair_config'][k]) for k in RENDER_FIELDS)
        if not same:
            raise UserError(f'{out} holds shards of different settings; use another folder')
        manifest = old
    done = {s['index'] for s in manifest['shards']}
    n_shards = math.ceil(n_renders / shard_size)
    bar = tqdm(total=n_renders, desc='renders', unit='render', disable=None if progress else True)
    bar.update(sum(s['count'] for s in manifest['shards']))
    for k in range(n_shards):
        if k in done:
            continue
        lo, hi = k * shard_size, min(n_renders, (k + 1) * shard_size)
        renders = []
        for i in range(lo, hi):
            rng = np.random.default_rng([seed, i])
            renders.append(sources[i % len(sources)].render(cfg, rng))
            bar.update(1)
        arrays = {'ground': np.stack([r.ground for r in renders]),
                  'aerial': np.stack([r.aerial for r in renders]),
                  'yaw_rad': np.array([r.yaw_rad for r in renders], np.float32),
                  'camera_latlon_deg': np.array([r.camera_latlon_deg for r in renders]),
                  'city_seed': np.array([r.city_seed for r in renders], np.int64)}
        if cfg.far_negatives:
            arrays['aerial_far'] = np.stack([r.aerial_far for r in renders])
        name = f'shard_{k:05d}.npz'
        with atomic_path(out / name, suffix='.npz') as tmp:
            np.savez(tmp, **arrays)
        manifest['shards'].append({'index': k, 'file': name, 'count': hi - lo})
        manifest['shards'].sort(key=lambda s: s['index'])
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    bar.close()
    return out



class ShardPairs:
    """Pairs drawn on the fly from pre-rendered shards; ``pairs_per_render`` per render.

    Index ``i`` takes render ``i % n_renders`` (draw number ``i // n_renders``): consecutive
    indices walk through one shard's renders (which cycle through the cities), so a batch
    holds different renders and the one-shard cache hits.
    """

    def __init__(self, shard_dir: str | os.PathLike, *, pairs_per_render: int = 1,
                 seed: int = 0, cfg: PairConfig | None = None) -> None:
        self.dir = Path(shard_dir)
        try:
            self.manifest = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f'{self.dir} is not a pair shard folder: {e}') from None
        stored = PairConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in self.manifest['pair_config'].items()})
        self.cfg = cfg or stored
        if (self.cfg.ground, self.cfg.aerial_side_px, self.cfg.aerial_side_m) != \
                (stored.ground, stored.aerial_side_px, stored.aerial_side_m):
            raise UserError('ground type and aerial crop size must match the shards')
        self.shards = self.manifest['shards']
        self.offsets = np.cumsum([0] + [s['count'] for s in self.shards])
        self.pairs_per_render = pairs_per_render
        self.seed = seed
        self._cache: tuple[int, dict] | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1]) * self.pairs_per_render

    def render(self, j: int) -> Render:
        k = int(np.searchsorted(self.offsets, j, side='right') - 1)
        if self._cache is None or self._cache[0] != k:
            with np.load(self.dir / self.shards[k]['file']) as z:
                self._cache = (k, {name: z[name] for name in z.files})
        a = self._cache[1]
        r = j - int(self.offsets[k])
        return Render(ground=a['ground'][r], aerial=a['aerial'][r], yaw_rad=float(a['yaw_rad'][r]),
                      camera_latlon_deg=tuple(a['camera_latlon_deg'][r]),
                      city_seed=int(a['city_seed'][r]),
                      aerial_far=a['aerial_far'][r] if 'aerial_far' in a else None)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        return draw_pair(self.render(i % int(self.offsets[-1])), self.cfg, rng)
