"""The Localizer: one camera frame plus a coarse prior in, a metric 3-DoF pose out.

Stages (each timed): candidate tiles near the prior (or the whole index without one), the
ground encoder once, retrieval scores, the pose decoder on the top-k candidates in one
batch (aerial encodings of recently used tiles come from an LRU cache), the best
hypothesis by ``confidence x (1 + cosine) / 2``, gating against the prior, and a 3x3
covariance (x, y, yaw) from the weighted spread of the hypotheses (the last three in
:mod:`ciper_ros.runtime.selection`, pure numpy; outputs decoded by
:mod:`ciper_ros.model.postprocess`).

Nothing here imports ROS: images are numpy arrays, the prior a small dataclass.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
import math
import time

import numpy as np
import torch

from ciper_ros.model.postprocess import hypotheses
from ciper_ros.runtime.index import TileIndex
from ciper_ros.runtime.selection import (
    CovarianceRule,
    gate_reason,
    heading_window,
    match_mixture,
    select_pose,
    tile_hypotheses,
    TileHypothesis,
    to_index_frame,
)
from ciper_ros.util.errors import UserError

PARTIAL_VIEW_FRACTION = 0.75     # panorama inputs with less of their pixels seen are partial
#                                  views (the forward camera's calibration and match rule)


@dataclass(frozen=True)
class Prior:
    """A coarse position (GNSS fix) and optionally a heading, with 1-sigma uncertainties."""

    lat_deg: float
    lon_deg: float
    sigma_m: float = 5.0
    yaw_rad: float | None = None
    yaw_sigma_rad: float | None = None

    def problem(self) -> str | None:
        """Why this prior cannot be used, or None."""
        vals = [self.lat_deg, self.lon_deg, self.sigma_m]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            return f'prior is not finite (lat {self.lat_deg}, lon {self.lon_deg}, ' \
                   f'sigma {self.sigma_m})'
        if not (-90 <= self.lat_deg <= 90 and -180 <= self.lon_deg <= 180):
            return f'prior lat/lon out of range ({self.lat_deg}, {self.lon_deg})'
        if self.sigma_m <= 0:
            return f'prior sigma_m must be positive, got {self.sigma_m}'
        if self.yaw_rad is not None and not math.isfinite(self.yaw_rad):
            return f'prior heading is not finite ({self.yaw_rad})'
        return None


@dataclass(frozen=True)
class LocalizerConfig:
    top_k: int = 9                       # candidate tiles decoded per frame: 9 decodes every
    #                                      gated tile of the median frame at sigma 10 m;
    #                                      measured 4.30 m vs 5.70 m median (p95 26.8 vs
    #                                      31.6 m) with 5 on test city 0, 100 frames
    candidate_sigmas: float = 3.0        # candidate radius: k sigma of the prior + half a crop
    gate_sigmas: float = 4.0             # reject when farther than this from the prior
    no_prior_top: int = 10               # candidates searched without a prior (kidnapped)
    heading_sigmas: float = 3.0          # heading prior narrows hypotheses to +-k sigma
    cache_mb: float = 64.0               # aerial encodings of recently used tiles
    spread_top: int = 8                  # hypotheses entering the covariance
    # what a tracker weighs: each decoded tile's distinct modes (selection.tile_hypotheses),
    # so the right place is among them when the best query is a look-alike along the road
    modes_per_tile: int = 3
    mode_separation_m: float = 3.0
    cov_scale: float = 1.0               # calibration factors (validation data):
    yaw_cov_scale: float = 1.0           # see runtime.calibration
    forward_cov_scale: float | None = None      # the same for forward-camera frames a
    forward_yaw_cov_scale: float | None = None  # panorama model resamples (None: as above)
    sigma_floor_m: float = 0.5
    sigma_ceiling_m: float = 50.0
    yaw_sigma_floor_rad: float = math.radians(1.0)
    yaw_sigma_ceiling_rad: float = math.pi
    # integrity (models with a match head): p = sigmoid(match_scale * logit + match_bias),
    # calibrated on validation frames (runtime.calibration); frames below min_match_prob
    # are rejected, and the covariance is the mixture of "right" and "anywhere the prior
    # allows" (selection.match_mixture)
    match_scale: float = 1.0
    match_bias: float = 0.0
    min_match_prob: float = 0.5
    # the same for forward-camera frames a panorama model resamples: a 90-degree footprint
    # gives the head less evidence, so its logits sit lower (None: as above)
    forward_match_scale: float | None = None
    forward_match_bias: float | None = None
    forward_min_match_prob: float | None = None


@dataclass
class LocalizationResult:
    ok: bool
    reason: str = ''
    lat_deg: float = math.nan
    lon_deg: float = math.nan
    xy_m: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))  # index ENU frame
    yaw_rad: float = math.nan
    covariance: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))
    score: float = 0.0
    match_prob: float = math.nan        # calibrated "this is a match" (models with one)
    tile_id: int = -1
    candidates: list[int] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)
    # every decoded tile's best pose (camera, index ENU frame), best first: a tracker's input
    hypotheses: list[TileHypothesis] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {'ok': self.ok, 'reason': self.reason, 'lat_deg': self.lat_deg,
                'lon_deg': self.lon_deg, 'x_m': float(self.xy_m[0]),
                'y_m': float(self.xy_m[1]), 'yaw_rad': self.yaw_rad,
                'covariance': np.asarray(self.covariance).tolist(), 'score': self.score,
                'match_prob': self.match_prob, 'tile_id': self.tile_id,
                'candidates': list(self.candidates),
                'timings_ms': dict(self.timings_ms),
                'hypotheses': [{'x_m': float(h.xy_m[0]), 'y_m': float(h.xy_m[1]),
                                'yaw_rad': h.yaw_rad, 'weight': h.weight,
                                'tile_id': self.candidates[h.candidate]
                                if h.candidate < len(self.candidates) else -1}
                               for h in self.hypotheses]}


class EncodingCache:
    """LRU cache of per-tile aerial encodings, bounded in megabytes."""

    def __init__(self, max_mb: float) -> None:
        self.max_bytes = int(max_mb * 2 ** 20)
        self._items: OrderedDict[int, tuple[dict, int]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: int) -> dict | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: int, enc: dict) -> None:
        size = sum(v.numel() * v.element_size() for v in enc.values() if torch.is_tensor(v))
        if size > self.max_bytes:
            return
        self._items[key] = (enc, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, s) = self._items.popitem(last=False)
            self.bytes -= s


class Localizer:
    def __init__(self, *, model, index: TileIndex, store,
                 config: LocalizerConfig = LocalizerConfig(), device: str = 'cpu') -> None:
        """Build a localizer.

        :param model: a CIPER module (run with the torch backend) or any backend of
            :mod:`ciper_ros.runtime.backends`
        :param store: the map the index was built from (crops of candidate tiles)
        """
        from ciper_ros.runtime.backends import TorchBackend

        self.model = TorchBackend(model, device=device) if isinstance(model, torch.nn.Module) \
            else model
        self.index = index
        self.store = store
        self.cfg = config
        self.device = torch.device(device)
        self.cache = EncodingCache(config.cache_mb)
        mc = model.config
        self.ground_hw = tuple(mc.ground_size)
        self.crop_px = int(mc.aerial_size[0])
        if self.crop_px != index.spec.crop_px:
            raise UserError(f'index crops are {index.spec.crop_px} px, the model takes '
                             f'{self.crop_px} px')

    # ------------------------------------------------------------------ helpers
    def _ground_tensor(self, image: np.ndarray) -> torch.Tensor:
        import cv2

        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f'image must be (H, W, 3) RGB, got shape '
                             f'{getattr(image, "shape", None)}')
        if image.dtype != np.uint8:
            raise UserError(f'image must be uint8, got {image.dtype}')
        h, w = self.ground_hw
        aspect, want = image.shape[1] / max(image.shape[0], 1), w / h
        if image.shape[0] < 8 or image.shape[1] < 8 or not 0.45 < aspect / want < 2.2:
            kind = self.model.config.ground
            raise UserError(f'image is {image.shape[1]}x{image.shape[0]}; the model takes '
                             f'{w}x{h} {kind} images (aspect {want:.2f}): wrong camera?')
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA
                               if image.shape[0] > h else cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        return x[None].to(self.device)

    def _aerial(self, tile_id: int) -> dict:
        enc = self.cache.get(tile_id)
        if enc is None:
            lat, lon = self.index.latlon_deg[tile_id]
            crop = self.store.crop((float(lat), float(lon)), self.index.crop_side_m,
                                   self.crop_px, zoom=self.index.spec.zoom)
            x = torch.from_numpy(crop.image_rgb).permute(2, 0, 1).float().div_(255.0)
            enc = self.model.encode_aerial(x[None].to(self.device))
            self.cache.put(tile_id, enc)
        return enc

    @staticmethod
    def _tic() -> float:
        return time.perf_counter()

    # ------------------------------------------------------------------ main entry
    def needs_camera(self, image: np.ndarray) -> bool:
        """Tell whether ``image`` is a forward camera's, to resample for a panorama model."""
        cfg = self.model.config
        h, w = cfg.ground_size
        shape = getattr(image, 'shape', (1, 1))
        return cfg.ground == 'panorama' and len(shape) >= 2 and shape[0] > 0 and \
            abs(shape[1] / shape[0] - w / h) > 0.5

    def seen_fraction(self, image: np.ndarray) -> float:
        """Give the fraction of a panorama model's input pixels that a camera saw.

        A forward camera or a rig resampled into the panorama leaves what no camera saw at
        exactly 0 (unseen azimuths, and the sky and road above and below a pinhole's
        vertical field of view); other models' inputs count as seen.
        """
        if self.model.config.ground != 'panorama' or getattr(image, 'ndim', 0) != 3:
            return 1.0
        return float(np.mean(image.max(axis=2) > 0))

    def as_model_input(self, image: np.ndarray, camera=None) -> np.ndarray:
        """Resample a forward camera's image into a panorama model's input (its footprint).

        ``camera``: the image's :class:`~ciper_ros.geo.camera.PinholeCamera` (level; from
        CameraInfo). Other images are returned as they are.
        """
        if camera is None or not self.needs_camera(image):
            return image
        from ciper_ros.geo.reproject import pinhole_to_panorama

        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.dtype != np.uint8:
            raise UserError(f'image must be (H, W, 3) uint8 RGB, got '
                             f'{getattr(image, "shape", None)}')
        h, w = self.ground_hw
        return pinhole_to_panorama(image, camera, width=w, height=h)[0]

    @torch.no_grad()
    def localize(self, image: np.ndarray, prior: Prior | None = None, *,
                 camera=None) -> LocalizationResult:
        """Localize one frame. Bad images raise ValueError; bad priors are rejected.

        ``camera``: intrinsics of a forward (pinhole) image given to a panorama model.
        """
        cfg, idx = self.cfg, self.index
        t = {}
        t0 = self._tic()
        model_input = self.as_model_input(image, camera)
        # a forward camera's footprint, or a rig's panorama with azimuths unseen: the
        # calibration and match rule of partial views
        forward = (camera is not None and self.needs_camera(image)) or \
            self.seen_fraction(model_input) < PARTIAL_VIEW_FRACTION
        ground = self._ground_tensor(model_input)
        problem = prior.problem() if prior is not None else None
        if problem:
            return LocalizationResult(ok=False, reason=problem)
        # 1. candidates
        if prior is not None:
            prior_xy = idx.plane.xy_m_from_latlon(np.array([[prior.lat_deg, prior.lon_deg]]))[0]
            # tiles whose central half (where training put cameras) meets the k-sigma circle
            radius = cfg.candidate_sigmas * prior.sigma_m
            d = np.abs(idx.xy_m - prior_xy[None])
            cand = np.flatnonzero(np.all(d <= radius + idx.crop_side_m / 4.0, axis=1))
            if len(cand) == 0:
                return LocalizationResult(
                    ok=False, reason=f'no indexed tile within {radius:.0f} m of the prior '
                                     f'(outside the indexed area?)',
                    timings_ms={'candidates': 1e3 * (self._tic() - t0)})
        else:
            prior_xy, cand = None, None
        t1 = self._tic()
        t['candidates'] = 1e3 * (t1 - t0)
        # 2. ground encoder once
        g = self.model.encode_ground(ground)
        desc = torch.nn.functional.normalize(g['desc'].float(), dim=-1)[0].cpu().numpy()
        t2 = self._tic()
        t['ground_encoder'] = 1e3 * (t2 - t1)
        # 3. retrieval scores
        k = cfg.top_k if cand is not None else max(cfg.top_k, cfg.no_prior_top)
        ids, sims = idx.search(desc, k, candidates=cand)
        k = len(ids)
        t3 = self._tic()
        t['retrieval'] = 1e3 * (t3 - t2)
        # 4. aerial encodings (cached) and one batched decode
        encs = [self._aerial(int(i)) for i in ids]
        t4 = self._tic()
        t['aerial_encoder'] = 1e3 * (t4 - t3)
        a = {key: torch.cat([e[key] for e in encs]) for key in encs[0]
             if torch.is_tensor(encs[0][key])}
        a['grid'] = encs[0]['grid']
        gk = {key: (v.expand(k, *v.shape[1:]) if torch.is_tensor(v) else v)
              for key, v in g.items()}
        yaw_c, yaw_range = heading_window(*((prior.yaw_rad, prior.yaw_sigma_rad)
                                            if prior is not None else (None, None)),
                                          heading_sigmas=cfg.heading_sigmas)
        yaw_prior = None if yaw_c is None else torch.full((k,), yaw_c, device=self.device)
        out = self.model.decode(gk, a, yaw_prior=yaw_prior, yaw_prior_range=yaw_range)
        t5 = self._tic()
        t['pose_decoder'] = 1e3 * (t5 - t4)
        # 5. best hypothesis, gating, covariance
        res = self._select(ids, sims, out, prior, prior_xy, forward=forward)
        t['select'] = 1e3 * (self._tic() - t5)
        t['total'] = 1e3 * (self._tic() - t0)
        res.timings_ms = t
        res.candidates = [int(i) for i in ids]
        return res

    def scales(self, *, forward: bool = False) -> tuple[float, float]:
        """Covariance calibration factors (position, heading) for a frame kind."""
        cfg = self.cfg
        if forward:
            return (cfg.cov_scale if cfg.forward_cov_scale is None else cfg.forward_cov_scale,
                    cfg.yaw_cov_scale if cfg.forward_yaw_cov_scale is None
                    else cfg.forward_yaw_cov_scale)
        return cfg.cov_scale, cfg.yaw_cov_scale

    def covariance_rule(self, *, forward: bool = False) -> CovarianceRule:
        """How this localizer turns a hypothesis spread into a covariance."""
        cfg = self.cfg
        s_pos, s_head = self.scales(forward=forward)
        return CovarianceRule(spread_top=cfg.spread_top, pos_scale=s_pos, yaw_scale=s_head,
                              sigma_floor_m=cfg.sigma_floor_m,
                              sigma_ceiling_m=cfg.sigma_ceiling_m,
                              yaw_sigma_floor_rad=cfg.yaw_sigma_floor_rad,
                              yaw_sigma_ceiling_rad=cfg.yaw_sigma_ceiling_rad)

    def _select(self, ids, sims, out, prior: Prior | None, prior_xy, *,
                forward: bool = False) -> LocalizationResult:
        idx = self.index
        cfg = self.cfg
        hyps = hypotheses(out, half_side_m=idx.crop_side_m / 2.0)      # K dicts of Q each
        xy = np.stack([h['xy_m'] for h in hyps])                           # (K, Q, 2)
        pts = to_index_frame(idx.plane, idx.latlon_deg[np.asarray(ids, np.int64)], xy)
        match = self.match_probability(out, forward=forward)               # (K,) or None
        min_prob = self.match_rule(forward=forward)[2]
        rule = self.covariance_rule(forward=forward)
        yaw = np.stack([h['yaw_rad'] for h in hyps])                      # (K, Q)
        conf = np.stack([h['score'] for h in hyps])                       # (K, Q)
        sel = select_pose(xy_m=pts, yaw_rad=yaw, confidence=conf,
                          similarity=np.asarray(sims), prior_xy_m=prior_xy,
                          prior_sigma_m=None if prior is None else prior.sigma_m,
                          rule=rule, match_prob=match)
        lat, lon = idx.plane.latlon_from_xy_m(sel.xy_m[None])[0]
        cov = sel.covariance
        p = math.nan if match is None else float(match[sel.candidate])
        if match is not None:
            cov = match_mixture(
                cov, p, prior_sigma_m=prior.sigma_m if prior is not None
                else cfg.sigma_ceiling_m,
                prior_yaw_sigma_rad=min(prior.yaw_sigma_rad, math.pi / math.sqrt(3.0))
                if prior is not None and prior.yaw_sigma_rad else math.pi / math.sqrt(3.0),
                rule=rule)
        res = LocalizationResult(ok=True, lat_deg=float(lat), lon_deg=float(lon),
                                 xy_m=sel.xy_m, yaw_rad=sel.yaw_rad, covariance=cov,
                                 score=sel.score, match_prob=p,
                                 tile_id=int(ids[sel.candidate]),
                                 hypotheses=tile_hypotheses(
                                     xy_m=pts, yaw_rad=yaw, confidence=conf,
                                     similarity=np.asarray(sims), rule=rule,
                                     match_prob=match, modes_per_tile=cfg.modes_per_tile,
                                     mode_separation_m=cfg.mode_separation_m))
        if match is not None and not p >= min_prob:
            res.ok = False
            res.reason = (f'no match: match probability {p:.2f} is below '
                          f'{min_prob:.3g} (the image fits no tile '
                          f'{"near the prior" if prior is not None else "searched"})')
        elif prior is not None:
            res.reason = gate_reason(xy_m=sel.xy_m, prior_xy_m=prior_xy,
                                     prior_sigma_m=prior.sigma_m, sigma_m=sel.sigma_m,
                                     gate_sigmas=cfg.gate_sigmas)
            res.ok = not res.reason
        return res

    def match_rule(self, *, forward: bool = False) -> tuple[float, float, float]:
        """(Platt scale, bias, acceptance threshold) of the match head for a frame kind."""
        cfg = self.cfg
        own = (cfg.match_scale, cfg.match_bias, cfg.min_match_prob)
        if not forward:
            return own
        fwd = (cfg.forward_match_scale, cfg.forward_match_bias, cfg.forward_min_match_prob)
        return tuple(o if f is None else f for o, f in zip(own, fwd, strict=True))

    def match_probability(self, out: dict, *, forward: bool = False) -> np.ndarray | None:
        """Calibrated match probability (K,) of each decoded tile; None without a head."""
        logit = out.get('match_logit')
        if logit is None:
            return None
        scale, bias, _ = self.match_rule(forward=forward)
        z = scale * logit.detach().cpu().double().numpy() + bias
        return 1.0 / (1.0 + np.exp(-z))
