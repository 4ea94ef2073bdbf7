"""Ground-level cameras: equirectangular panoramas and pinhole images of a synthetic city.

Column ray casting over the 2.5-D world (vectorised numpy, no per-pixel Python): every
image column is a vertical plane through the camera; samples along its horizontal ray at
exponentially growing distances give the height profile, whose running maximum elevation
tells, for every row at once, which sample the pixel's ray hits first (a sorted search).
Building facades are intersected exactly with their footprint rectangles, so roof lines and
corners land where a pinhole projection puts them. Roll and pitch of a pinhole camera are
a pure rotation about its centre: the level image is rendered, then warped by the rotation's
homography, which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import cv2
import numpy as np

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.synth._kernels import (
    cast_columns,
    HAVE_NUMBA,
    pack_layers,
    respond,
    shade_pixels,
)
from ciper_ros.synth.appearance import (
    Capture,
    get_preset,
    ground_rgb01,
    object_colours,
    shadow_mask,
    Textures,
)
from ciper_ros.synth.world import Kind, World

SKY_LABEL = 0
GROUND_LABEL = 65535
CAR_LABEL_OFFSET = 1 << 20


@dataclass(frozen=True)
class CameraPose:
    """Camera position (map ENU, height above ground) and attitude.

    ``yaw_rad``: REP-103 heading of the optical axis; ``pitch_rad`` > 0 looks up;
    ``roll_rad`` > 0 rotates the image clockwise as seen by the camera (right side down).
    """

    x_m: float
    y_m: float
    yaw_rad: float
    z_m: float = 1.7
    pitch_rad: float = 0.0
    roll_rad: float = 0.0

    def R_map_cam(self) -> np.ndarray:
        """Rotation optical frame (x right, y down, z forward) -> map ENU."""
        cy, sy = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        fwd = np.array([cy, sy, 0.0])
        right = np.array([sy, -cy, 0.0])
        down = np.array([0.0, 0.0, -1.0])
        R_level = np.stack([right, down, fwd], axis=1)
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        R_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])   # nose up about x
        cr, sr = math.cos(self.roll_rad), math.sin(self.roll_rad)
        R_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])    # about the optical axis
        return R_level @ R_pitch @ R_roll

    def project(self, camera: PinholeCamera, points_map: np.ndarray) -> np.ndarray:
        """(N, 3) map points (z above ground) -> (N, 2) pixels; NaN behind the camera."""
        p = np.asarray(points_map, np.float64).reshape(-1, 3) - \
            np.array([self.x_m, self.y_m, self.z_m])
        return camera.project(p @ self.R_map_cam())


class GroundRenderer:
    """Renders what a vehicle camera sees in ``world`` during drive ``epoch`` (>= 1).

    The capture (sun, shadows, colour response) is drawn from the city's appearance preset
    unless given; palettes, season, road wear, sky and ``fog_m`` (m, unless given) follow it.
    """

    def __init__(self, world: World, *, epoch: int = 1, capture: Capture | None = None,
                 max_range_m: float = 150.0, n_samples: int = 96, fog_m: float | None = None,
                 seed: int | None = None, use_numba: bool = HAVE_NUMBA) -> None:
        preset = get_preset(world.config.appearance)
        self.world = world
        self.use_numba = use_numba
        self.epoch = epoch
        rng = np.random.default_rng([world.config.seed, 0xD21E, epoch if seed is None else seed])
        self.capture = capture or Capture.draw(rng, preset.ground)
        self.tex = Textures(world.config.seed)
        self.fog_m = preset.fog_m if fog_m is None else fog_m
        self.d = np.geomspace(0.4, max_range_m, n_samples).astype(np.float32)   # (K,)
        self.d_prev = np.concatenate([[0.0], self.d[:-1]]).astype(np.float32)
        self.car_layer = world.car_layer(epoch)
        self.car_h = world.car_height_m
        self.car_rgb = world.car_rgb01
        b = world.buildings
        nb = world.n_buildings
        self.nb = nb
        # per object id tables (0 = none, 1..B buildings, B+1.. trees)
        n_obj = 1 + nb + len(world.trees.height_m)
        facade_rgb, _, crown_rgb = object_colours(world)
        self.obj_rgb = np.zeros((n_obj, 3), np.float32)
        self.obj_rgb[1:nb + 1] = facade_rgb / 255.0
        self.obj_rgb[nb + 1:] = crown_rgb / 255.0
        self.b_center = np.zeros((nb + 1, 2), np.float32)
        self.b_center[1:] = b.center_xy_m
        self.b_u = np.zeros((nb + 1, 2), np.float32)
        self.b_u[1:] = np.stack([np.cos(b.yaw_rad), np.sin(b.yaw_rad)], -1)
        self.b_half = np.ones((nb + 1, 2), np.float32)
        self.b_half[1:] = b.half_extent_m
        # tree crowns start at 35 % of the tree height; below them only the trunk blocks
        self.crown_base = np.zeros(n_obj, np.float32)
        self.crown_base[nb + 1:] = 0.35 * world.trees.height_m
        self.tree_xy = np.zeros((n_obj, 2), np.float32)
        self.tree_xy[nb + 1:] = world.trees.center_xy_m
        self.b_floor = np.concatenate([[3.0], b.floor_m]).astype(np.float32)
        self.b_height = np.concatenate([[0.0], b.height_m]).astype(np.float32)
        # building ids grown by 2.5 m (more than the sample step up to ~45 m): rays passing
        # near a footprint test its rectangle
        ids = np.where(world.obj <= nb, world.obj, 0).astype(np.uint16)
        r = max(1, int(round(2.5 / world.res_m)))
        self.halo_flat = cv2.dilate(ids, np.ones((2 * r + 1, 2 * r + 1), np.uint8)).ravel()
        self.packed = pack_layers(world.height_m, world.kind, world.obj, self.halo_flat,
                                  self.car_layer) if use_numba else None
        self.b_bay = np.concatenate([[3.0], b.bay_m]).astype(np.float32)
        # the numpy reference gathers float32 heights; the compiled caster reads `packed`
        self.height_flat = None if use_numba else world.height_m.astype(np.float32).ravel()
        self.car_flat = self.car_layer.ravel()
        self.obj_flat = world.obj.ravel()
        self.kind_flat = world.kind.ravel()
        self.shadow_factor = 2
        self.shadow = shadow_mask(world.surface_height_m(epoch), world.res_m, self.capture.sun,
                                  factor=self.shadow_factor).astype(np.float32)
        self.ground_rgb = preset.ground_rgb()      # (16, 3) 0-255 per Kind
        self.palette = (self.ground_rgb / 255.0).astype(np.float32)
        sun = self.capture.sun.direction
        self.sun_h = sun[:2] / max(np.linalg.norm(sun[:2]), 1e-6)
        self.sun_el = self.capture.sun.elevation_rad
        self.sky_top = np.float32(preset.sky_top_rgb) * rng.uniform(0.85, 1.1)
        self.sky_horizon = np.float32(preset.sky_horizon_rgb) * rng.uniform(0.9, 1.05)

    # ------------------------------------------------------------------ public
    def panorama(self, pose: CameraPose, *, width: int = 256, height: int = 64,
                 labels: bool = False):
        """Equirectangular 360 x 180 degree panorama, (height, width, 3) uint8.

        The centre column faces ``yaw_rad``; columns turn clockwise to the right. Rolling the
        image right by k columns (``np.roll(img, k, axis=1)``) is the panorama at
        yaw + k * 2 pi / width. Roll/pitch are ignored.
        """
        u = np.arange(width, dtype=np.float64)
        az = pose.yaw_rad + math.pi - 2 * math.pi * (u + 0.5) / width
        elev = math.pi / 2 - math.pi * (np.arange(height) + 0.5) / height
        t = np.tan(np.clip(elev, -1.55, 1.55)).astype(np.float32)
        rgb, lab = self._columns(pose, az, np.broadcast_to(t, (width, height)))
        img = self._respond(rgb.transpose(1, 0, 2))
        return (img, lab.T.copy()) if labels else img

    def pinhole(self, pose: CameraPose, camera: PinholeCamera, *, labels: bool = False):
        """Pinhole image with the given intrinsics, (camera.height, camera.width, 3) uint8."""
        if abs(pose.pitch_rad) < 1e-9 and abs(pose.roll_rad) < 1e-9:
            rgb, lab = self._level(pose, camera)
            img = self._respond(rgb)
            return (img, lab) if labels else img
        # render a level camera covering every ray of the tilted one, then warp exactly
        level = CameraPose(pose.x_m, pose.y_m, pose.yaw_rad, pose.z_m)
        R_level_cam = level.R_map_cam().T @ pose.R_map_cam()
        K = camera.K
        corners = np.array([[0, 0, 1], [camera.width - 1, 0, 1], [0, camera.height - 1, 1],
                            [camera.width - 1, camera.height - 1, 1]], np.float64)
        rays = (R_level_cam @ np.linalg.inv(K) @ corners.T).T
        edge = np.array([[camera.width / 2, 0, 1], [camera.width / 2, camera.height - 1, 1],
                         [0, camera.height / 2, 1], [camera.width - 1, camera.height / 2, 1]])
        rays = np.concatenate([rays, (R_level_cam @ np.linalg.inv(K) @ edge.T).T])
        uv = rays[:, :2] / rays[:, 2:3] * [camera.fx, camera.fy]
        lo = np.floor(uv.min(axis=0)) - 2
        hi = np.ceil(uv.max(axis=0)) + 2
        big = PinholeCamera(int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1, camera.fx,
                            camera.fy, -lo[0], -lo[1])
        rgb, lab = self._level(level, big)
        H = big.K @ R_level_cam @ np.linalg.inv(K)  # tilted pixel -> level pixel
        size = (camera.width, camera.height)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        out = cv2.warpPerspective(rgb, H, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        img = self._respond(out)
        if not labels:
            return img
        lab_out = cv2.warpPerspective(lab.astype(np.float32), H, size,
                                      flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REPLICATE)
        return img, lab_out.astype(np.int64)

    # ------------------------------------------------------------------ internals
    def _respond(self, rgb: np.ndarray) -> np.ndarray:
        if not self.use_numba:
            return self.capture.respond(rgb)
        out = np.empty(rgb.shape, np.uint8)
        respond(rgb, self.capture.color_matrix.astype(np.float32),
                np.asarray(self.capture.haze_rgb, np.float32), np.float32(self.capture.gamma),
                out)
        return out

    def _level(self, pose: CameraPose, camera: PinholeCamera):
        u = np.arange(camera.width, dtype=np.float64)
        x = (u - camera.cx) / camera.fx
        az = pose.yaw_rad - np.arctan(x)
        v = np.arange(camera.height, dtype=np.float64)
        t = (-(v[None, :] - camera.cy) / camera.fy) / np.sqrt(1.0 + x[:, None] ** 2)
        rgb, lab = self._columns(pose, az, t.astype(np.float32))
        return rgb.transpose(1, 0, 2).copy(), lab.T.copy()

    def _slab(self, pose: CameraPose, ca: np.ndarray, sa: np.ndarray,
              ob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal ray (camera, direction (ca, sa)) vs footprint rectangles ``ob``."""
        ux, uy = self.b_u[ob, 0], self.b_u[ob, 1]
        ox = np.float32(pose.x_m) - self.b_center[ob, 0]
        oy = np.float32(pose.y_m) - self.b_center[ob, 1]
        da = ca * ux + sa * uy          # ray direction in building axes
        db = -ca * uy + sa * ux
        oa = ox * ux + oy * uy
        ob_ = -ox * uy + oy * ux
        ha, hb = self.b_half[ob, 0], self.b_half[ob, 1]
        with np.errstate(divide='ignore', invalid='ignore'):
            a0, a1 = (-ha - oa) / da, (ha - oa) / da
            b0, b1 = (-hb - ob_) / db, (hb - ob_) / db
        entry = np.maximum(np.minimum(a0, a1), np.minimum(b0, b1))
        exit_ = np.minimum(np.maximum(a0, a1), np.maximum(b0, b1))
        bad = ~np.isfinite(entry) | ~np.isfinite(exit_)
        entry = np.where(bad, np.inf, entry)
        exit_ = np.where(bad, -np.inf, exit_)
        return entry.astype(np.float32), exit_.astype(np.float32)

    def _under_crowns(self, under, k_hit, t, obj, car, h, dist, px, py, z):
        """First hit of the rays in ``under``, treating tree samples below the crown as free."""
        K = h.shape[1]
        ci, ri = np.nonzero(under)
        tt = t[ci, ri][:, None]                                   # (P, 1)
        o = obj[ci]                                               # (P, K)
        ray_z = z + tt * dist[ci]
        is_tree = o > self.nb
        trunk = ((px[ci] - self.tree_xy[o, 0]) ** 2 + (py[ci] - self.tree_xy[o, 1]) ** 2) \
            < 0.35 ** 2
        under = is_tree & (ray_z < self.crown_base[o]) & ~trunk
        floor = self.car_h[car[ci]]
        free = under & (ray_z > floor)    # between the ground (or a car) and the crown
        blocked = (h[ci] - z >= tt * dist[ci]) & ~free
        first = np.where(blocked.any(axis=1), blocked.argmax(axis=1), K)
        k_hit = k_hit.copy()
        k_hit[ci, ri] = first
        # the first block is the ground (or car) beneath a crown: not the tree
        below = np.zeros(k_hit.shape, bool)
        hit_under = np.take_along_axis(under, np.minimum(first, K - 1)[:, None], 1)[:, 0]
        below[ci, ri] = (first < K) & hit_under
        return k_hit, below

    def _cast(self, pose: CameraPose, ca: np.ndarray, sa: np.ndarray, t: np.ndarray):
        """First hit of every pixel ray: (k_hit, h, obj, car, kind, dist), each (C, R)."""
        if self.use_numba:
            C, R = t.shape
            out = (np.empty((C, R), np.int64), np.empty((C, R), np.float32),
                   np.empty((C, R), np.int64), np.empty((C, R), np.int64),
                   np.empty((C, R), np.int64), np.empty((C, R), np.float32))
            w = self.world
            cast_columns(np.float32(pose.x_m), np.float32(pose.y_m), np.float32(pose.z_m),
                         ca.astype(np.float32), sa.astype(np.float32),
                         np.ascontiguousarray(t, np.float32), self.d, self.d_prev,
                         np.float32(w.x0_m), np.float32(w.y1_m), np.float32(w.res_m),
                         w.size_px, self.packed, self.car_h, self.nb, self.b_center,
                         self.b_u, self.b_half, self.b_height, self.crown_base, self.tree_xy,
                         *out)
            return out
        return self._cast_numpy(pose, ca[:, None], sa[:, None], t)

    def _cast_numpy(self, pose: CameraPose, ca: np.ndarray, sa: np.ndarray, t: np.ndarray):
        """Compute :meth:`_cast` in plain numpy: the reference, and the fallback without numba."""
        w = self.world
        z = np.float32(pose.z_m)
        C, R = t.shape
        K = len(self.d)
        px = np.float32(pose.x_m) + ca * self.d[None, :]          # (C, K)
        py = np.float32(pose.y_m) + sa * self.d[None, :]
        lin, inside = w.flat_index(px, py)
        h = np.take(self.height_flat, lin)
        car = np.take(self.car_flat, lin).astype(np.int64)
        h = np.where(inside, np.maximum(h, np.take(self.car_h, car)), 0.0).astype(np.float32)
        obj = np.where(inside, np.take(self.obj_flat, lin), 0).astype(np.int64)
        kind = np.where(inside, np.take(self.kind_flat, lin), Kind.OUT)

        # buildings are authoritative rectangles: every sample within a halo of a footprint
        # intersects the ray with that rectangle exactly, so silhouettes and roof lines are
        # exact even for rays that graze a corner between two samples
        dist = np.broadcast_to(self.d, (C, K)).copy()
        halo = np.where(inside & (car == 0), np.take(self.halo_flat, lin), 0).astype(np.int64)
        in_bld = (obj > 0) & (obj <= self.nb) & (car == 0)
        cand = (halo > 0) | in_bld
        if np.any(cand):
            ci, ki = np.nonzero(cand)
            ob = np.where(in_bld[ci, ki], obj[ci, ki], halo[ci, ki])
            entry, exit_ = self._slab(pose, ca[ci, 0], sa[ci, 0], ob)
            crosses = (entry <= exit_) & (exit_ > 0.0)
            entering = crosses & (entry >= self.d_prev[ki] - 1e-3) & (entry <= self.d[ki])
            # the entry point must be on the building's raster (buildings clipped by blocks)
            ex = np.float32(pose.x_m) + ca[ci, 0] * (entry + 0.05)
            ey = np.float32(pose.y_m) + sa[ci, 0] * (entry + 0.05)
            elin, ein = w.flat_index(ex, ey)
            entering &= ein & (np.take(self.obj_flat, elin) == ob)
            inside_b = in_bld[ci, ki] & crosses
            claim = entering | inside_b
            cc, kc, oc = ci[claim], ki[claim], ob[claim]
            h[cc, kc] = np.maximum(h[cc, kc], self.b_height[oc])
            dist[cc, kc] = np.clip(entry[claim], np.maximum(self.d_prev[kc], 0.05), self.d[kc])
            obj[cc, kc] = oc
            kind[cc, kc] = Kind.BUILDING
            # raster fringe the exact rectangle does not cover: ground
            fringe = in_bld[ci, ki] & ~crosses
            h[ci[fringe], ki[fringe]] = 0.0
            obj[ci[fringe], ki[fringe]] = 0
            kind[ci[fringe], ki[fringe]] = Kind.SIDEWALK

        alpha = np.clip((h - z) / dist, -400.0, 400.0)
        M = np.maximum.accumulate(alpha, axis=1)                  # (C, K) non-decreasing
        # first sample whose elevation reaches each row's ray: one flat sorted search
        offs = (np.arange(C, dtype=np.float64) * 1000.0)[:, None]
        flat = (M + offs).ravel()
        q = (np.clip(t, -399.0, 399.0) + offs).ravel()
        k_hit = (np.searchsorted(flat, q, side='left').reshape(C, R)
                 - (np.arange(C) * K)[:, None])
        # rays that pass under a tree crown (and miss its trunk): search again without it
        kk = np.minimum(k_hit, K - 1)
        flat_idx = (kk + (np.arange(C) * K)[:, None]).ravel()
        obj_hit = obj.ravel()[flat_idx].reshape(C, R)
        tree_hit = (k_hit < K) & (obj_hit > self.nb)
        if np.any(tree_hit):
            under = tree_hit & (z + t * dist.ravel()[flat_idx].reshape(C, R)
                                < self.crown_base[obj_hit])
            below = None
            if np.any(under):
                k_hit, below = self._under_crowns(under, k_hit, t, obj, car, h, dist, px, py,
                                                  z)
        kk = np.minimum(k_hit, K - 1)
        flat_idx = (kk + (np.arange(C) * K)[:, None]).ravel()
        h_hit = h.ravel()[flat_idx].reshape(C, R)
        obj_hit = obj.ravel()[flat_idx].reshape(C, R)
        car_hit = car.ravel()[flat_idx].reshape(C, R)
        if np.any(tree_hit) and below is not None:
            h_hit = np.where(below, self.car_h[car_hit], h_hit)
            obj_hit = np.where(below, 0, obj_hit)
        kind_hit = kind.ravel()[flat_idx].reshape(C, R)
        d_hit = dist.ravel()[flat_idx].reshape(C, R)

        return k_hit, h_hit, obj_hit, car_hit, kind_hit, d_hit

    def _columns(self, pose: CameraPose, az: np.ndarray, t: np.ndarray):
        """Colours (C, R, 3) in [0, 1] and labels (C, R) for columns ``az`` and row slopes t.

        ``t[c, r]`` is the tangent of the elevation angle of row r's ray in column c.
        """
        ca = np.cos(az).astype(np.float32)[:, None]
        sa = np.sin(az).astype(np.float32)[:, None]
        hits = self._cast(pose, ca[:, 0], sa[:, 0], t)
        if self.use_numba:
            return self._shade_numba(pose, ca[:, 0], sa[:, 0], t, hits)
        return self._shade_numpy(pose, ca, sa, t, hits)

    def _shade_numba(self, pose: CameraPose, ca: np.ndarray, sa: np.ndarray, t: np.ndarray,
                     hits):
        C, R = t.shape
        rgb = np.empty((C, R, 3), np.float32)
        lab = np.empty((C, R), np.int64)
        w = self.world
        sun = self.sun_h
        shade_pixels(np.float32(pose.x_m), np.float32(pose.y_m), np.float32(pose.z_m),
                     ca.astype(np.float32), sa.astype(np.float32),
                     np.ascontiguousarray(t, np.float32), self.d, self.d_prev, *hits,
                     np.float32(w.x0_m), np.float32(w.y1_m), np.float32(w.res_m), w.size_px,
                     self.kind_flat, self.palette, self.tex.fine, self.tex.coarse,
                     np.float32(self.tex.fine_m), np.float32(self.tex.coarse_m), self.shadow,
                     np.float32(w.res_m * self.shadow_factor), self.car_rgb, self.car_h,
                     self.obj_rgb, self.nb, self.b_center, self.b_u, self.b_half, self.b_floor,
                     self.b_bay, self.crown_base, np.float32(self.capture.ambient),
                     np.float32(sun[0]), np.float32(sun[1]), np.float32(math.cos(self.sun_el)),
                     self.sky_top, self.sky_horizon, np.float32(self.fog_m), rgb, lab)
        return rgb, lab

    def _shade_bilinear_shadow(self, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        """Cast-shadow fraction at ground points, bilinear on the coarser shadow grid."""
        w = self.world
        sres = w.res_m * self.shadow_factor
        u = (gx - np.float32(w.x0_m)) / np.float32(sres) - 0.5
        v = (np.float32(w.y1_m) - gy) / np.float32(sres) - 0.5
        u0 = np.floor(u).astype(np.int64)
        v0 = np.floor(v).astype(np.int64)
        fu, fv = u - u0, v - v0
        n0, n1 = self.shadow.shape
        s = np.zeros_like(gx)
        for dv in (0, 1):
            for du in (0, 1):
                wgt = (fu if du else 1 - fu) * (fv if dv else 1 - fv)
                s += wgt * self.shadow[np.clip(v0 + dv, 0, n0 - 1), np.clip(u0 + du, 0, n1 - 1)]
        return s

    def _shade_numpy(self, pose: CameraPose, ca: np.ndarray, sa: np.ndarray, t: np.ndarray,
                     hits):
        """Colour every pixel from its first hit in plain numpy (the reference)."""
        w = self.world
        z = np.float32(pose.z_m)
        C, R = t.shape
        K = len(self.d)
        k_hit, h_hit, obj_hit, car_hit, kind_hit, d_hit = hits
        sky = k_hit >= K
        kk = np.minimum(k_hit, K - 1)
        rgb = np.zeros((C, R, 3), np.float32)
        lab = np.zeros((C, R), np.int64)
        light_amb = np.float32(self.capture.ambient)
        t_hit = t
        is_ground = ~sky & (h_hit <= 0.01) & (t_hit < 0)
        # ground: exact intersection with the plane, painted surface at that point
        if np.any(is_ground):
            gi = np.nonzero(is_ground)
            dg = np.clip(-z / t_hit[gi], self.d_prev[kk[gi]], self.d[kk[gi]])
            gx = np.float32(pose.x_m) + ca[gi[0], 0] * dg
            gy = np.float32(pose.y_m) + sa[gi[0], 0] * dg
            grow, gcol, gin = w.index(gx, gy)
            gkind = np.where(gin, np.take(self.kind_flat, grow * w.size_px + gcol), Kind.OUT)
            gkind = np.where((gkind == Kind.BUILDING) | (gkind == Kind.TREE), Kind.SIDEWALK,
                             gkind)
            col_g = ground_rgb01(gkind, gx, gy, self.tex, palette=self.ground_rgb)
            light = (1.0 - (1.0 - light_amb) * self._shade_bilinear_shadow(gx, gy))
            light = light.astype(np.float32)
            rgb[gi] = col_g * light[:, None]
            lab[gi] = GROUND_LABEL
            d_hit = d_hit.copy()
            d_hit[gi] = dg
        # objects
        objm = ~sky & ~is_ground
        if np.any(objm):
            oi = np.nonzero(objm)
            d_o = d_hit[oi]
            hx = np.float32(pose.x_m) + ca[oi[0], 0] * d_o
            hy = np.float32(pose.y_m) + sa[oi[0], 0] * d_o
            hz = z + t_hit[oi] * d_o
            o = obj_hit[oi]
            cr = car_hit[oi].astype(np.int64)
            col_o = np.empty((len(o), 3), np.float32)
            is_car = cr > 0
            is_bld = ~is_car & (o > 0) & (o <= self.nb)
            is_tree = ~is_car & (o > self.nb)
            other = ~is_car & ~is_bld & ~is_tree
            fine, coarse = self.tex.sample(hx * 1.3 + hz * 0.7, hy * 1.3 - hz * 0.9)
            # cars: body colour, darker glass band, lighter roof seen from above
            if np.any(is_car):
                c_rgb = self.car_rgb[cr[is_car]]
                ch = self.car_h[cr[is_car]]
                zc = hz[is_car]
                glass = (zc > ch - 0.55) & (zc < ch - 0.08)
                c_rgb = np.where(glass[:, None], c_rgb * 0.25 + 0.08, c_rgb)
                col_o[is_car] = c_rgb * (0.8 + 0.3 * fine[is_car, None])
                lab[oi[0][is_car], oi[1][is_car]] = CAR_LABEL_OFFSET + cr[is_car]
            if np.any(is_bld):
                ob = o[is_bld]
                rx = hx[is_bld] - self.b_center[ob, 0]
                ry = hy[is_bld] - self.b_center[ob, 1]
                ux, uy = self.b_u[ob, 0], self.b_u[ob, 1]
                a = rx * ux + ry * uy
                bb = -rx * uy + ry * ux
                face_a = np.abs(a) / self.b_half[ob, 0] >= np.abs(bb) / self.b_half[ob, 1]
                along = np.where(face_a, bb, a)
                nx = np.where(face_a, np.sign(a) * ux, -np.sign(bb) * uy)
                ny = np.where(face_a, np.sign(a) * uy, np.sign(bb) * ux)
                zb = hz[is_bld]
                fl = np.mod(zb, self.b_floor[ob])
                bay = np.mod(along, self.b_bay[ob])
                window = (((fl > 0.9) & (fl < 2.3) & (zb > 3.0)) |
                          ((zb > 0.4) & (zb < 2.6))) & (bay > 0.45) & \
                    (bay < self.b_bay[ob] - 0.45)
                base = self.obj_rgb[ob] * (0.9 + 0.2 * fine[is_bld, None])
                glass = np.float32([0.16, 0.2, 0.26]) + 0.12 * coarse[is_bld, None]
                cb = np.where(window[:, None], glass, base)
                lam = np.clip(nx * self.sun_h[0] + ny * self.sun_h[1], 0.0, 1.0) * \
                    math.cos(self.sun_el)
                cb = cb * (light_amb + (1 - light_amb) * 1.4 * lam)[:, None]
                col_o[is_bld] = cb
                lab[oi[0][is_bld], oi[1][is_bld]] = ob
            if np.any(is_tree):
                tr = o[is_tree]
                col_o[is_tree] = self.obj_rgb[tr] * (0.55 + 0.7 * fine[is_tree, None]) * \
                    (0.8 + 0.3 * coarse[is_tree, None])
                low = hz[is_tree] < self.crown_base[tr]  # the trunk
                col_o[np.flatnonzero(is_tree)[low]] = np.float32([0.3, 0.22, 0.15])
                lab[oi[0][is_tree], oi[1][is_tree]] = tr
            if np.any(other):
                col_o[other] = ground_rgb01(kind_hit[oi][other], hx[other], hy[other],
                                            self.tex, palette=self.ground_rgb)
            rgb[oi] = col_o
        # distance fog, then the sky where nothing was hit
        fog = (1.0 - np.exp(d_hit * np.float32(-1.0 / self.fog_m)))[..., None]
        rgb -= fog * (rgb - self.sky_horizon)
        e = (np.clip(t_hit, 0.0, 1.5) * np.float32(1 / 1.5))[..., None]
        sky_rgb = self.sky_horizon * (1 - e) + self.sky_top * e
        rgb = np.where(sky[..., None], sky_rgb, rgb)
        return rgb, lab
