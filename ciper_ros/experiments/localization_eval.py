"""Chained evaluation with a GNSS prior, through the runtime users run.

Per frame, no tracking: a camera at a random road pose of a held-out city, a GNSS prior
drawn around the truth with ``prior_sigma_m``, and :meth:`Localizer.localize` on the city's
tile index (candidates gated by the prior, retrieval, pose on the top candidates). This is
the default-model issue's "chained mode"; the evaluator's GT-crop and gallery-retrieval
modes are the papers' protocols, this one is what a vehicle gets.

Metrics: position and heading errors of localized frames (median, p95), the share of
frames whose gated candidates contain a crop with the camera in its central half (where
training put cameras) -- among the tiles the prior gates, and among the top-k decoded
after retrieval -- and whose chosen crop does, covariance consistency (mean NEES of
(x, y), ideal 2; share of errors inside the 95 % ellipse, ideal 0.95), the prior's own error.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.metrics.frames import summarize as summarize_frames
from ciper_ros.runtime.pipeline import Frame, FramePipeline
from ciper_ros.util.errors import UserError

FORWARD_CAMERA = {'width': 512, 'height': 288, 'hfov_deg': 90.0}   # a KITTI/Ford-like camera
WHOLE_CITY_CACHE_MB = 1024.0     # aerial encodings of every tile of a 500 m city (v2: 250 MB)


def forward_camera():
    """Return the forward pinhole camera of the chained evaluation (90 deg, 16:9)."""
    from ciper_ros.geo.camera import PinholeCamera

    c = FORWARD_CAMERA
    return PinholeCamera.from_hfov(c['width'], c['height'], c['hfov_deg'])


def chained_frames(*, world, plane, crop_side_m: float, model_config, n: int,
                   prior_sigma_m: float, heading_prior_deg: float | None, seed: int,
                   camera: str = 'native'):
    """Yield ``n`` frames at random road poses of ``world`` with GNSS priors.

    ``camera``: ``'native'`` renders the model's own ground input (a panorama with unknown
    heading unless ``heading_prior_deg``), ``'forward'`` a level 90-degree pinhole camera
    (:data:`FORWARD_CAMERA`) looking along the road, passed with its intrinsics;
    ``'rig:<preset>'`` (:func:`~ciper_ros.geo.camera.rig_preset`, cameras of the forward
    camera's size) every camera of a rig rendered from its mount, as ``views``. Each frame:
    ``image`` (None for a rig), ``camera`` (or None), ``views``, ``prior``, ``prior_xy_m``
    (index plane), ``truth_xy_m``, ``truth_latlon_deg``, ``truth_yaw_rad``,
    ``prior_error_m``. Deterministic in ``seed``.
    """
    from ciper_ros.geo.camera import rig_preset, RIG_PRESETS
    from ciper_ros.runtime.localizer import Prior
    from ciper_ros.runtime.mount import Mount
    from ciper_ros.runtime.pipeline import View
    from ciper_ros.synth.pairs import PairConfig, sample_road_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer

    rigs = tuple(f'rig:{r}' for r in RIG_PRESETS)
    if camera not in ('native', 'forward', *rigs):
        raise UserError(f"camera must be 'native', 'forward' or one of {', '.join(rigs)}, "
                        f'got {camera!r}')
    mc = model_config
    cam_cfg = PairConfig.for_model(mc)
    fwd = forward_camera() if camera == 'forward' else None
    rig = None
    if camera.startswith('rig:'):
        if mc.ground != 'panorama':
            raise UserError('a camera rig needs a panorama model')
        c = FORWARD_CAMERA
        rig = rig_preset(camera[4:], width=c['width'], height=c['height'])
    renderer = GroundRenderer(world, epoch=1)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        xy, yaw = sample_road_pose(world, rng, margin_m=crop_side_m)
        yaw = float(rng.uniform(-math.pi, math.pi)) if mc.ground == 'panorama' and \
            heading_prior_deg is None and fwd is None else float(yaw)
        pose = CameraPose(xy[0], xy[1], yaw, z_m=float(rng.uniform(1.4, 2.0)))
        views = ()
        if rig is not None:           # each camera at its mount (the rig's centre is base)
            img = None
            views = tuple(View(image=renderer.pinhole(CameraPose(
                *rc.pose_in_map(float(xy[0]), float(xy[1]), yaw), z_m=pose.z_m), rc.camera),
                camera=rc.camera, frame_id=rc.name,
                mount=Mount(rc.x_m, rc.y_m, rc.yaw_rad, source='rig')) for rc in rig)
        elif fwd is not None:
            img = renderer.pinhole(pose, fwd)
        elif mc.ground == 'panorama':
            img = renderer.panorama(pose, width=cam_cfg.pano_width, height=cam_cfg.pano_height)
        else:
            img = renderer.pinhole(pose, cam_cfg.camera)
        noise = rng.normal(0.0, prior_sigma_m, 2)
        p_ll = world.plane.latlon_from_xy_m((xy + noise)[None])[0]
        yaw_prior = yaw_sigma = None
        if heading_prior_deg is not None:
            yaw_prior = yaw + math.radians(float(rng.uniform(-heading_prior_deg,
                                                             heading_prior_deg)))
            yaw_sigma = math.radians(heading_prior_deg) / 3.0
        t_ll = world.plane.latlon_from_xy_m(xy[None])[0]
        yield {'image': img, 'camera': fwd, 'views': views,
               'prior': Prior(float(p_ll[0]), float(p_ll[1]), sigma_m=prior_sigma_m,
                              yaw_rad=yaw_prior, yaw_sigma_rad=yaw_sigma),
               'prior_xy_m': plane.xy_m_from_latlon(np.asarray(p_ll)[None])[0],
               'truth_xy_m': plane.xy_m_from_latlon(t_ll[None])[0],
               'truth_latlon_deg': (float(t_ll[0]), float(t_ll[1])), 'truth_yaw_rad': yaw,
               'prior_error_m': float(np.linalg.norm(noise))}


def open_city_localizer(*, model: str | os.PathLike, city: str | os.PathLike,
                        index_dir: str | os.PathLike, top_k: int | None = None,
                        calibration: str | os.PathLike | None = None,
                        uncalibrated: bool = False, cache_mb: float | None = None,
                        progress: bool = True):
    """(localizer, world) for a synthetic city; builds the city's tile index if missing.

    Covariance scales: ``calibration`` file, else the checkpoint's own (``uncalibrated``:
    none). ``cache_mb``: the aerial encoding cache (default: the runtime's); results do
    not depend on it, only the time (:data:`WHOLE_CITY_CACHE_MB` holds a 500 m city of a
    v2 model, about 1.5 MB a tile).
    """
    from ciper_ros.runtime.assemble import open_localizer
    from ciper_ros.runtime.index import build_index
    from ciper_ros.runtime.localizer import LocalizerConfig
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.world import World

    world_path, map_path = city_paths(city)
    index_dir = Path(index_dir)
    if not (index_dir / 'index.json').exists():
        build_index(map_path=map_path, model_path=model, out_dir=index_dir, progress=progress)
    top_k = top_k or LocalizerConfig.top_k
    cache = {} if cache_mb is None else {'cache_mb': float(cache_mb)}
    config = LocalizerConfig(top_k=top_k, **cache)
    if uncalibrated:      # explicit unit scales (open_localizer would use the checkpoint's)
        config = LocalizerConfig(top_k=top_k, forward_cov_scale=1.0, forward_yaw_cov_scale=1.0,
                                 **cache)
    loc = open_localizer(index=index_dir, model=model, calibration=calibration, config=config)
    return loc, World.load(world_path)


def evaluate_localization(*, model: str | os.PathLike, city: str | os.PathLike,
                          index_dir: str | os.PathLike, n: int = 200,
                          prior_sigma_m: float = 10.0, heading_prior_deg: float | None = None,
                          seed: int = 12345, calibration: str | os.PathLike | None = None,
                          uncalibrated: bool = False, camera: str = 'native',
                          top_k: int | None = None,
                          progress: bool = True) -> dict:
    """Localize ``n`` frames of ``city`` with GNSS priors; build the index if missing.

    ``camera``: see :func:`chained_frames` (``'forward'``: a 90-degree pinhole camera).
    """
    loc, world = open_city_localizer(model=model, city=city, index_dir=index_dir, top_k=top_k,
                                     calibration=calibration, uncalibrated=uncalibrated,
                                     progress=progress)
    return localize_city(loc, world, n=n, prior_sigma_m=prior_sigma_m,
                         heading_prior_deg=heading_prior_deg, seed=seed, camera=camera,
                         calibration=calibration, progress=progress)[0]


def localize_city(loc, world, *, n: int, prior_sigma_m: float | None,
                  heading_prior_deg: float | None = None, seed: int = 12345,
                  camera: str = 'native', calibration: str | os.PathLike | None = None,
                  progress: bool = True) -> tuple[dict, list[FrameRecord]]:
    """(summary, records) of ``n`` chained frames of ``world`` through an open localizer.

    ``prior_sigma_m`` None: the frames are given no prior (the whole-city search; the
    Localizer decodes its ``no_prior_top`` best retrieved tiles). The summary is
    :func:`evaluate_localization`'s.
    """
    mc = loc.model.config
    idx = loc.index
    frames = chained_frames(world=world, plane=idx.plane, crop_side_m=idx.crop_side_m,
                            model_config=mc, n=n, prior_sigma_m=prior_sigma_m or 10.0,
                            heading_prior_deg=heading_prior_deg, seed=seed, camera=camera)
    if prior_sigma_m is None:
        frames = ({**fr, 'prior': None, 'prior_error_m': math.nan} for fr in frames)
    rows = chained_records(loc, frames, total=n, desc=f'localize ({camera})',
                           progress=progress)
    s_pos, s_head = loc.scales(forward=partial_view(loc, camera))
    return summarize(rows) | {'n': n, 'prior_sigma_m': prior_sigma_m,
                              'heading_prior_deg': heading_prior_deg, 'seed': seed,
                              'camera': camera, 'ground': mc.ground,
                              'index_tiles': len(idx),
                              'calibration': str(calibration) if calibration else None,
                              'cov_scale': s_pos, 'yaw_cov_scale': s_head}, rows


def partial_view(loc, camera: str) -> bool:
    """Tell whether ``camera``'s frames take the localizer's partial-view rules.

    The Localizer's own test (the seen fraction of the model's input) on the footprint
    of the forward camera or the rig.
    """
    from ciper_ros.geo.camera import rig_preset
    from ciper_ros.geo.reproject import pinhole_footprint, rig_footprint
    from ciper_ros.runtime.localizer import PARTIAL_VIEW_FRACTION

    if loc.model.config.ground != 'panorama' or camera == 'native':
        return False
    h, w = loc.ground_hw
    c = FORWARD_CAMERA
    seen = pinhole_footprint(forward_camera(), width=w, height=h) if camera == 'forward' \
        else rig_footprint(rig_preset(camera[4:], width=c['width'], height=c['height']),
                           width=w, height=h)
    return float(seen.mean()) < PARTIAL_VIEW_FRACTION


def chained_records(loc, frames, *, total: int | None = None, desc: str = 'localize',
                    progress: bool = True) -> list[FrameRecord]:
    """Run chained frames through the one per-frame pipeline; records carry truth and gating.

    Extras per record: whether a tile holding the camera in its central half was among the
    gated tiles, among the decoded candidates, and whether the chosen tile holds it.
    """
    from tqdm import tqdm

    idx = loc.index
    quarter = idx.crop_side_m / 4.0
    pipe = FramePipeline(localizer=loc, use_gnss=False)
    out = []
    for i, fr in enumerate(tqdm(frames, total=total, desc=desc, unit='frame',
                                disable=not progress)):
        truth = fr['truth_xy_m']
        rec = pipe.process(Frame(stamp_ns=i, image=fr['image'], prior=fr['prior'],
                                 camera=fr['camera'], views=fr.get('views', ())))
        set_truth(rec, truth, fr['truth_yaw_rad'])
        holds = np.all(np.abs(idx.xy_m - truth) <= quarter, axis=1)   # tiles "containing" it
        # the Localizer's gate: tiles whose central half meets the prior's k-sigma circle
        # (no prior: the whole index)
        gated = np.ones(len(idx.xy_m), bool) if fr['prior'] is None else \
            np.all(np.abs(idx.xy_m - fr['prior_xy_m']) <= loc.cfg.candidate_sigmas
                   * fr['prior'].sigma_m + quarter, axis=1)
        rec.extra = {'truth_in_gated_tiles': bool(np.any(holds & gated)),
                     'gated_tiles': int(gated.sum()),
                     'truth_in_decoded_candidates': bool(np.any(holds[list(
                         rec.candidate_tiles)])),
                     'chosen_tile_correct': bool(rec.tile_id >= 0 and np.all(
                         np.abs(idx.xy_m[rec.tile_id] - truth) <= quarter))}
        out.append(rec)
    return out


def set_truth(rec: FrameRecord, truth_xy_m: np.ndarray, truth_yaw_rad: float) -> None:
    """Judge a record by a camera truth (the chained frames have no mount: base = camera)."""
    rec.truth_x_m, rec.truth_y_m = float(truth_xy_m[0]), float(truth_xy_m[1])
    rec.truth_yaw_rad = float(truth_yaw_rad)
    rec.truth_camera_xy_yaw = (rec.truth_x_m, rec.truth_y_m, rec.truth_yaw_rad)


def summarize(records: list[FrameRecord]) -> dict:
    """Summarize chained records: the one frame summary plus the tile-gating shares."""
    def pct(v, q):
        return float(np.percentile(v, q)) if len(v) else math.nan

    s = summarize_frames(records)
    prior = np.array([r.prior_error_m for r in records])
    out = {'frames': len(records), 'localized_fraction': s['localized_fraction'],
           'position_error_m_median': s.get('position_error_m_median', math.nan),
           'position_error_m_p95': s.get('position_error_m_p95', math.nan)}
    for m in (0.5, 1, 2):
        out[f'position_within_{m:g}m'] = s.get(f'position_within_{m:g}m', math.nan)
    out |= {'heading_error_deg_median': s.get('heading_error_deg_median', math.nan),
            'heading_error_deg_p95': s.get('heading_error_deg_p95', math.nan)}
    for key in ('truth_in_gated_tiles', 'truth_in_decoded_candidates', 'chosen_tile_correct'):
        out[key] = float(np.mean([r.extra[key] for r in records]))
    out['gated_tiles_median'] = pct(np.array([r.extra['gated_tiles'] for r in records]), 50)
    out |= {'nees_xy_mean': s.get('nees_xy_mean', math.nan),
            'coverage_95': s.get('coverage_95', math.nan),
            'prior_error_m_median': pct(prior, 50), 'prior_error_m_p95': pct(prior, 95),
            'ms_per_frame_median': s.get('processing_ms_median', math.nan)}
    order = ['frames', 'localized_fraction', 'position_error_m_median', 'position_error_m_p95',
             'position_within_0.5m', 'position_within_1m', 'position_within_2m',
             'heading_error_deg_median', 'heading_error_deg_p95', 'truth_in_gated_tiles',
             'gated_tiles_median', 'truth_in_decoded_candidates', 'chosen_tile_correct',
             'nees_xy_mean', 'coverage_95', 'prior_error_m_median', 'prior_error_m_p95',
             'ms_per_frame_median']
    return {k: out[k] for k in order}
