"""Integrity: frames that match nothing, given with a valid GNSS prior, must be rejected.

A frame of each kind is placed at a random road pose of a city and given a GNSS prior drawn
around it exactly as the chained evaluation draws one (sigma as the protocol), so the
prior is right and only the image is wrong:

* ``noise``, ``smooth``, ``sky``, ``flat``: images of nothing (:func:`~ciper_ros.synth.
  nulls.null_image`);
* ``other_city``: a real panorama rendered in *another* city, given with the prior of this
  one (the camera is somewhere the map does not show);
* ``wrong_camera``: the true place's forward pinhole image (90 degrees, 16:9) resized into
  the panorama input as if it were a 360-degree panorama, i.e. given without its
  CameraInfo: the right place, the wrong geometry.

They run through the one per-frame path (:func:`~ciper_ros.experiments.localization_eval.
chained_records`, :class:`~ciper_ros.runtime.pipeline.FramePipeline`). A frame is
*accepted* when the pipeline reports it localized and its calibrated match probability is
at or above the threshold; the null acceptance (per kind and overall) is the false-accept
rate, the real chained frames' acceptance its price.
"""

from __future__ import annotations

from dataclasses import replace
import math

import numpy as np

from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.synth.nulls import NULL_KINDS
from ciper_ros.util.errors import UserError

NULL_FRAME_KINDS = (*NULL_KINDS, 'other_city', 'wrong_camera')
P_CLIP = 1e-15          # match probabilities are inverted to logits inside [P, 1 - P]


def raw_match(localizer):
    """Return a Localizer sharing model, index and cache, with the match head uncalibrated.

    ``match_scale`` 1, ``match_bias`` 0 (so ``match_prob`` is the sigmoid of the raw
    logit) and ``min_match_prob`` 0 (nothing is rejected for its match probability): what
    :func:`match_logits` reads and the match calibration is fitted on.
    """
    from ciper_ros.runtime.localizer import Localizer

    loc = Localizer.__new__(Localizer)
    loc.__dict__.update(localizer.__dict__)
    loc.cfg = replace(localizer.cfg, match_scale=1.0, match_bias=0.0, min_match_prob=0.0,
                      forward_match_scale=None, forward_match_bias=None,
                      forward_min_match_prob=None)
    return loc


def match_logits(records: list[FrameRecord]) -> np.ndarray:
    """Raw match logits (N,) of records from a :func:`raw_match` localizer (NaN: none).

    The inverse of the sigmoid, ``log(p / (1 - p))``, exact for logits within +-34.
    """
    p = np.array([r.match_prob for r in records], np.float64)
    q = np.clip(p, P_CLIP, 1.0 - P_CLIP)
    return np.where(np.isfinite(p), np.log(q) - np.log1p(-q), np.nan)


FORWARD_NULL_KINDS = (*NULL_KINDS, 'other_city')   # wrong_camera is a panorama's null


def null_kinds(camera: str) -> tuple[str, ...]:
    """Give the null frame kinds of a camera (``'native'`` or ``'forward'``)."""
    return FORWARD_NULL_KINDS if camera == 'forward' else NULL_FRAME_KINDS


def null_frames(*, world, plane, crop_side_m: float, model_config, n: int,
                prior_sigma_m: float, seed: int, other_world=None,
                kinds: tuple[str, ...] | None = None, camera: str = 'native',
                heading_prior_deg: float | None = None):
    """Yield ``n`` frames that match nothing, cycling through ``kinds``, with GNSS priors.

    Each frame has the keys of :func:`~ciper_ros.experiments.localization_eval.
    chained_frames` (``truth_xy_m`` / ``truth_yaw_rad``: the road pose the prior was drawn
    around, ``truth_z_m`` its height; only ``wrong_camera`` images show it) and ``kind``.
    ``other_world``: the city ``other_city`` frames are rendered in (required for that
    kind). ``camera``: ``'native'`` (the model's own input) or ``'forward'``: images of
    the chained evaluation's forward pinhole camera, given with its intrinsics and, as its
    real frames, a heading prior of +-``heading_prior_deg`` (kinds default to
    :func:`null_kinds`). Deterministic in ``seed``.
    """
    import cv2

    from ciper_ros.experiments.localization_eval import forward_camera
    from ciper_ros.runtime.localizer import Prior
    from ciper_ros.synth.nulls import null_image
    from ciper_ros.synth.pairs import PairConfig, sample_road_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer

    if camera not in ('native', 'forward'):
        raise UserError(f"camera must be 'native' or 'forward', got {camera!r}")
    kinds = null_kinds(camera) if kinds is None else kinds
    bad = [k for k in kinds if k not in null_kinds(camera)]
    if bad or not kinds:
        raise UserError(f'null frame kinds of a {camera} camera must be among '
                        f'{null_kinds(camera)}, got {kinds}')
    if 'other_city' in kinds and other_world is None:
        raise UserError("null frames of kind 'other_city' need another city (other_world)")
    if 'wrong_camera' in kinds and model_config.ground != 'panorama':
        raise UserError("null frames of kind 'wrong_camera' need a panorama model")
    h, w = (int(v) for v in model_config.ground_size)
    cam_cfg = PairConfig.for_model(model_config)
    fwd = forward_camera() if camera == 'forward' else None
    if fwd is not None:
        h, w = fwd.height, fwd.width
    renderer = GroundRenderer(world, epoch=1)
    other = GroundRenderer(other_world, epoch=1) if other_world is not None else None
    for i in range(n):
        kind = kinds[i % len(kinds)]
        rng = np.random.default_rng([seed, i])
        xy, yaw = sample_road_pose(world, rng, margin_m=crop_side_m)
        pose = CameraPose(xy[0], xy[1], float(yaw), z_m=float(rng.uniform(1.4, 2.0)))
        if kind == 'other_city':
            oxy, oyaw = sample_road_pose(other_world, rng, margin_m=crop_side_m)
            opose = CameraPose(oxy[0], oxy[1], float(rng.uniform(-math.pi, math.pi))
                               if fwd is None else float(oyaw),
                               z_m=float(rng.uniform(1.4, 2.0)))
            if fwd is not None:
                img = other.pinhole(opose, fwd)
            elif model_config.ground == 'panorama':
                img = other.panorama(opose, width=cam_cfg.pano_width,
                                     height=cam_cfg.pano_height)
            else:
                img = other.pinhole(opose, cam_cfg.camera)
        elif kind == 'wrong_camera':
            # (288, 512) pinhole -> (h, w) panorama input: 90 degrees stretched over 360
            img = cv2.resize(renderer.pinhole(pose, forward_camera()), (w, h),
                             interpolation=cv2.INTER_AREA)
        else:
            img = null_image(kind, height=h, width=w, rng=rng)
        noise = rng.normal(0.0, prior_sigma_m, 2)
        p_ll = world.plane.latlon_from_xy_m((xy + noise)[None])[0]
        t_ll = world.plane.latlon_from_xy_m(xy[None])[0]
        yaw_prior = yaw_sigma = None
        if heading_prior_deg is not None:
            yaw_prior = float(yaw) + math.radians(float(rng.uniform(-heading_prior_deg,
                                                                    heading_prior_deg)))
            yaw_sigma = math.radians(heading_prior_deg) / 3.0
        yield {'image': img, 'camera': fwd, 'kind': kind,
               'prior': Prior(float(p_ll[0]), float(p_ll[1]), sigma_m=prior_sigma_m,
                              yaw_rad=yaw_prior, yaw_sigma_rad=yaw_sigma),
               'prior_xy_m': plane.xy_m_from_latlon(np.asarray(p_ll)[None])[0],
               'truth_xy_m': plane.xy_m_from_latlon(t_ll[None])[0],
               'truth_latlon_deg': (float(t_ll[0]), float(t_ll[1])),
               'truth_yaw_rad': float(yaw), 'truth_z_m': pose.z_m,
               'prior_error_m': float(np.linalg.norm(noise))}


def null_records(loc, world, *, n: int, prior_sigma_m: float, seed: int, other_world=None,
                 kinds: tuple[str, ...] | None = None, camera: str = 'native',
                 heading_prior_deg: float | None = None, desc: str = 'null frames',
                 progress: bool = True) -> list[FrameRecord]:
    """Run :func:`null_frames` through the chained per-frame path; ``extra['kind']`` set."""
    from ciper_ros.experiments.localization_eval import chained_records

    frames = list(null_frames(world=world, plane=loc.index.plane,
                              crop_side_m=loc.index.crop_side_m, model_config=loc.model.config,
                              n=n, prior_sigma_m=prior_sigma_m, seed=seed,
                              other_world=other_world, kinds=kinds, camera=camera,
                              heading_prior_deg=heading_prior_deg))
    records = chained_records(loc, frames, total=n, desc=desc, progress=progress)
    for rec, fr in zip(records, frames, strict=True):
        rec.extra['kind'] = fr['kind']
    return records


def accepted(rec: FrameRecord, threshold: float) -> bool:
    """Tell whether the pipeline accepted a frame: localized, match probability >= threshold."""
    return bool(rec.ok and math.isfinite(rec.match_prob) and rec.match_prob >= threshold)


def summarize_integrity(null: list[FrameRecord], real: list[FrameRecord], *,
                        threshold: float) -> dict:
    """Share null frames (per kind, overall) and real frames accepted at ``threshold``.

    ``real_match_passed``: real frames whose match probability alone passes (the gate
    against the prior aside).
    """
    def share(recs, fn):
        return float(np.mean([fn(r) for r in recs])) if recs else math.nan

    kinds = sorted({r.extra['kind'] for r in null}, key=lambda k: (
        NULL_FRAME_KINDS.index(k) if k in NULL_FRAME_KINDS else 99, k))
    per_kind = {}
    for k in kinds:
        rk = [r for r in null if r.extra['kind'] == k]
        per_kind[k] = {'frames': len(rk), 'accepted': share(rk, lambda r: accepted(
            r, threshold)), 'match_prob_median': float(np.nanmedian(
                [r.match_prob for r in rk])) if any(math.isfinite(r.match_prob)
                                                    for r in rk) else math.nan}
    return {'threshold': float(threshold), 'null_frames': len(null),
            'null_accepted': share(null, lambda r: accepted(r, threshold)),
            'per_kind': per_kind, 'real_frames': len(real),
            'real_accepted': share(real, lambda r: accepted(r, threshold)),
            'real_match_passed': share(real, lambda r: math.isfinite(r.match_prob)
                                       and r.match_prob >= threshold)}


def evaluate_integrity(loc, world, *, real: dict[str, list[FrameRecord]],
                       cameras: dict[str, dict], n: int, prior_sigma_m: float, seed: int,
                       other_world=None, progress: bool = True) -> dict:
    """Null and real acceptance per camera at its calibrated threshold, and overall.

    ``cameras``: name -> {``camera``, ``heading_prior_deg``} (as the chained evaluation's
    :func:`~ciper_ros.experiments.city_eval.eval_cameras`); ``real``: each camera's real
    chained records. Per camera, ``n`` null frames of its kinds with its heading prior,
    judged at the localizer's threshold for that camera kind (``Localizer.match_rule``).
    Overall ``null_accepted`` / ``real_accepted``: the mean over cameras; ``per_kind``
    keys are ``'<camera> <kind>'``.
    """
    per_camera, per_kind = {}, {}
    for name, cam in cameras.items():
        thr = loc.match_rule(forward=cam['camera'] == 'forward')[2]
        null = null_records(loc, world, n=n, prior_sigma_m=prior_sigma_m, seed=seed,
                            other_world=other_world, camera=cam['camera'],
                            heading_prior_deg=cam['heading_prior_deg'],
                            desc=f'null frames ({name})', progress=progress)
        per_camera[name] = summarize_integrity(null, real[name], threshold=thr)
        per_kind |= {f'{name} {k}': v for k, v in per_camera[name]['per_kind'].items()}

    def mean(key):
        return float(np.mean([c[key] for c in per_camera.values()]))

    return {'null_accepted': mean('null_accepted'), 'real_accepted': mean('real_accepted'),
            'real_match_passed': mean('real_match_passed'),
            'null_frames': sum(c['null_frames'] for c in per_camera.values()),
            'real_frames': sum(c['real_frames'] for c in per_camera.values()),
            'per_kind': per_kind, 'cameras': per_camera, 'prior_sigma_m': prior_sigma_m,
            'seed': seed}
