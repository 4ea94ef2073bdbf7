"""Column ray casting kernel (numba): the hot loop of the ground renderer.

Same algorithm and results as ``GroundRenderer._cast_numpy`` (kept as the reference and as
the fallback where numba is missing), compiled: one pass over the K samples of a column
builds its running maximum elevation, then each row finds its first hit by binary search.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is not installed
    HAVE_NUMBA = False

    def njit(*args, **kwargs):
        def wrap(f):
            return f
        return wrap if not args or not callable(args[0]) else args[0]

BUILDING = 10
SIDEWALK = 5
MAX_CARS = 0x3FFF


def pack_layers(height_m: np.ndarray, kind: np.ndarray, obj: np.ndarray, halo: np.ndarray,
                car: np.ndarray) -> np.ndarray:
    """Pack the per-pixel layers the caster reads into one int64 per pixel.

    Bits: height in cm (14) | kind (4) | object id (16) | building halo id (16) | car (14).
    """
    if car.max(initial=0) > MAX_CARS:
        raise ValueError(f'more than {MAX_CARS} parked cars in one epoch')
    h_cm = np.clip(np.round(height_m.astype(np.float32).ravel() * 100.0), 0, 0x3FFF)
    packed = h_cm.astype(np.int64)
    for layer, shift in ((kind, 14), (obj, 18), (halo, 34), (car, 50)):
        packed |= layer.ravel().astype(np.int64) << shift
    return packed


@njit(cache=True, nogil=True)
def respond(rgb, matrix, haze, gamma, out):
    """Camera colour response: 3x3 matrix, haze offset, clip, gamma; to uint8 (H, W, 3)."""
    H, W, _ = rgb.shape
    for i in range(H):
        for j in range(W):
            for ch in range(3):
                v = matrix[ch, 0] * rgb[i, j, 0] + matrix[ch, 1] * rgb[i, j, 1] + \
                    matrix[ch, 2] * rgb[i, j, 2] + haze[ch]
                v = min(max(v, 0.0), 1.0) ** gamma
                out[i, j, ch] = np.uint8(v * 255.0 + 0.5)


@njit(cache=True, nogil=True)
def _slab(x, y, ca, sa, cx, cy, ux, uy, ha, hb):
    ox = x - cx
    oy = y - cy
    da = ca * ux + sa * uy
    db = -ca * uy + sa * ux
    oa = ox * ux + oy * uy
    ob = -ox * uy + oy * ux
    if da != 0.0:
        a0 = (-ha - oa) / da
        a1 = (ha - oa) / da
        amin, amax = min(a0, a1), max(a0, a1)
    elif abs(oa) <= ha:
        amin, amax = -np.inf, np.inf
    else:
        return np.inf, -np.inf
    if db != 0.0:
        b0 = (-hb - ob) / db
        b1 = (hb - ob) / db
        bmin, bmax = min(b0, b1), max(b0, b1)
    elif abs(ob) <= hb:
        bmin, bmax = -np.inf, np.inf
    else:
        return np.inf, -np.inf
    return max(amin, bmin), min(amax, bmax)


@njit(cache=True, nogil=True)
def cast_columns(x, y, z, ca, sa, t, d, d_prev, x0, y1, res, n, packed, car_h,
                 nb, b_center, b_u, b_half, b_height, crown_base, tree_xy,
                 k_hit, h_hit, obj_hit, car_hit, kind_hit, d_hit):
    C, R = t.shape
    K = d.shape[0]
    hs = np.empty(K, np.float32)
    ds = np.empty(K, np.float32)
    os_ = np.empty(K, np.int64)
    cs = np.empty(K, np.int64)
    ks = np.empty(K, np.int64)
    xs = np.empty(K, np.float32)
    ys = np.empty(K, np.float32)
    M = np.empty(K, np.float32)
    for c in range(C):
        best = -np.inf
        for k in range(K):
            px = x + ca[c] * d[k]
            py = y + sa[c] * d[k]
            col = int(math.floor((px - x0) / res))
            row = int(math.floor((y1 - py) / res))
            h = 0.0
            car = 0
            ob = 0
            kd = 0
            hal = 0
            if 0 <= col < n and 0 <= row < n:
                v = packed[row * n + col]  # one memory access for all layers
                h = np.float32(v & 0x3FFF) * np.float32(0.01)
                kd = (v >> 14) & 0xF
                ob = (v >> 18) & 0xFFFF
                car = (v >> 50) & 0x3FFF
                if car > 0:
                    h = max(h, car_h[car])
                else:
                    hal = (v >> 34) & 0xFFFF
            dist = d[k]
            in_bld = ob > 0 and ob <= nb and car == 0
            if hal > 0 or in_bld:
                b = ob if in_bld else hal
                entry, exit_ = _slab(x, y, ca[c], sa[c], b_center[b, 0], b_center[b, 1],
                                     b_u[b, 0], b_u[b, 1], b_half[b, 0], b_half[b, 1])
                crosses = entry <= exit_ and exit_ > 0.0
                entering = crosses and entry >= d_prev[k] - 1e-3 and entry <= d[k]
                if entering:
                    ex = x + ca[c] * (entry + 0.05)
                    ey = y + sa[c] * (entry + 0.05)
                    ecol = int(math.floor((ex - x0) / res))
                    erow = int(math.floor((y1 - ey) / res))
                    entering = 0 <= ecol < n and 0 <= erow < n and \
                        ((packed[erow * n + ecol] >> 18) & 0xFFFF) == b
                if entering or (in_bld and crosses):
                    h = max(h, b_height[b])
                    # a camera at or inside a facade enters at once: never a zero distance
                    dist = min(max(entry, d_prev[k], np.float32(0.05)), d[k])
                    ob = b
                    kd = BUILDING
                elif in_bld:
                    h = 0.0
                    ob = 0
                    kd = SIDEWALK
            hs[k] = h
            ds[k] = dist
            os_[k] = ob
            cs[k] = car
            ks[k] = kd
            xs[k] = px
            ys[k] = py
            a = (h - z) / dist
            a = min(max(a, -400.0), 400.0)
            best = max(best, a)
            M[k] = best
        for r in range(R):
            tr = min(max(t[c, r], -399.0), 399.0)
            lo, hi = 0, K
            while lo < hi:
                mid = (lo + hi) // 2
                if M[mid] < tr:
                    lo = mid + 1
                else:
                    hi = mid
            k = lo
            below = False  # hit the ground (or a car) under a tree crown
            # a ray passing under a tree crown (and off its trunk) goes on
            if k < K and os_[k] > nb and z + t[c, r] * ds[k] < crown_base[os_[k]]:
                k2 = K
                for j in range(k, K):
                    if hs[j] - z >= t[c, r] * ds[j]:
                        oj = os_[j]
                        ray_z = z + t[c, r] * ds[j]
                        if oj > nb and ray_z < crown_base[oj]:
                            dx = xs[j] - tree_xy[oj, 0]
                            dy = ys[j] - tree_xy[oj, 1]
                            if dx * dx + dy * dy >= 0.35 * 0.35:  # off the trunk
                                if ray_z > car_h[cs[j]]:
                                    continue  # free: between the ground (or car) and crown
                                below = True
                        k2 = j
                        break
                k = k2
            k_hit[c, r] = k
            kk = min(k, K - 1)
            h_hit[c, r] = car_h[cs[kk]] if below else hs[kk]
            obj_hit[c, r] = 0 if below else os_[kk]
            car_hit[c, r] = cs[kk]
            kind_hit[c, r] = ks[kk]
            d_hit[c, r] = ds[kk]


@njit(cache=True, nogil=True, inline='always')
def _tex(tex, x_m, y_m, texel_m):
    n = tex.shape[0]
    i = int(math.floor(x_m / texel_m)) & (n - 1)
    j = int(math.floor(y_m / texel_m)) & (n - 1)
    return tex[j, i]


@njit(cache=True, nogil=True, inline='always')
def _ground(kind, x_m, y_m, palette, fine_tex, coarse_tex, fine_m, coarse_m, out):
    fine = _tex(fine_tex, x_m, y_m, fine_m)
    coarse = _tex(coarse_tex, x_m, y_m, coarse_m)
    mod = (0.86 + 0.28 * fine) * (0.9 + 0.2 * coarse)
    for ch in range(3):
        out[ch] = palette[kind, ch] * mod
    if kind == 6 or kind == 0:  # grass (and off-map lawn): dry and lush patches
        out[0] += (coarse - 0.5) * 0.12
        out[1] += (coarse - 0.5) * 0.06
        out[2] += (coarse - 0.5) * -0.02
    for ch in range(3):
        out[ch] = min(max(out[ch], 0.0), 1.0)


@njit(cache=True, nogil=True)
def shade_pixels(x, y, z, ca, sa, t, d, d_prev, k_hit, h_hit, obj_hit, car_hit, kind_hit,
                 d_hit, x0, y1, res, n, kind_l, palette, fine_tex, coarse_tex, fine_m,
                 coarse_m, shadow, shadow_res, car_rgb, car_h, obj_rgb, nb, b_center, b_u,
                 b_half, b_floor, b_bay, crown_base, ambient, sun_hx, sun_hy, cos_el,
                 sky_top, sky_horizon, fog_m, rgb, lab):
    """Colour every pixel from its first hit; same model as ``GroundRenderer._shade_numpy``."""
    C, R = t.shape
    K = d.shape[0]
    sh_n0, sh_n1 = shadow.shape
    col = np.empty(3, np.float32)
    for c in range(C):
        for r in range(R):
            tr = t[c, r]
            k = k_hit[c, r]
            dist = d_hit[c, r]
            if k >= K:  # sky
                e = min(max(tr, 0.0), 1.5) / 1.5
                for ch in range(3):
                    rgb[c, r, ch] = sky_horizon[ch] * (1 - e) + sky_top[ch] * e
                lab[c, r] = 0
                continue
            if h_hit[c, r] <= 0.01 and tr < 0:  # ground: exact intersection with the plane
                dist = min(max(-z / tr, d_prev[k]), d[k])
                gx = x + ca[c] * dist
                gy = y + sa[c] * dist
                ci = int(math.floor((gx - x0) / res))
                ri = int(math.floor((y1 - gy) / res))
                kd = 0
                if 0 <= ci < n and 0 <= ri < n:
                    kd = kind_l[ri * n + ci]
                if kd == 10 or kd == 11:
                    kd = 5
                _ground(kd, gx, gy, palette, fine_tex, coarse_tex, fine_m, coarse_m, col)
                # bilinear cast shadow (coarser grid): soft edges
                u = (gx - x0) / shadow_res - 0.5
                v = (y1 - gy) / shadow_res - 0.5
                u0 = int(math.floor(u))
                v0 = int(math.floor(v))
                fu = u - u0
                fv = v - v0
                s = 0.0
                for dv in range(2):
                    for du in range(2):
                        uu = min(max(u0 + du, 0), sh_n1 - 1)
                        vv = min(max(v0 + dv, 0), sh_n0 - 1)
                        wgt = (fu if du else 1 - fu) * (fv if dv else 1 - fv)
                        s += wgt * shadow[vv, uu]
                light = 1.0 - (1.0 - ambient) * s
                for ch in range(3):
                    col[ch] *= light
                lab[c, r] = 65535
            else:
                hx = x + ca[c] * dist
                hy = y + sa[c] * dist
                hz = z + tr * dist
                o = obj_hit[c, r]
                cr = car_hit[c, r]
                fine = _tex(fine_tex, hx * 1.3 + hz * 0.7, hy * 1.3 - hz * 0.9, fine_m)
                coarse = _tex(coarse_tex, hx * 1.3 + hz * 0.7, hy * 1.3 - hz * 0.9, coarse_m)
                if cr > 0:  # car: body colour, darker glass band
                    ch_ = car_h[cr]
                    glass = hz > ch_ - 0.55 and hz < ch_ - 0.08
                    for ch in range(3):
                        base = car_rgb[cr, ch] * 0.25 + 0.08 if glass else car_rgb[cr, ch]
                        col[ch] = base * (0.8 + 0.3 * fine)
                    lab[c, r] = (1 << 20) + cr
                elif 0 < o <= nb:  # facade: windows in floors and bays, lit by the sun
                    rx = hx - b_center[o, 0]
                    ry = hy - b_center[o, 1]
                    ux = b_u[o, 0]
                    uy = b_u[o, 1]
                    a = rx * ux + ry * uy
                    bb = -rx * uy + ry * ux
                    face_a = abs(a) / b_half[o, 0] >= abs(bb) / b_half[o, 1]
                    if face_a:
                        along = bb
                        sgn = 1.0 if a > 0 else (-1.0 if a < 0 else 0.0)
                        nx, ny = sgn * ux, sgn * uy
                    else:
                        along = a
                        sgn = 1.0 if bb > 0 else (-1.0 if bb < 0 else 0.0)
                        nx, ny = -sgn * uy, sgn * ux
                    fl = hz % b_floor[o]
                    bay = along % b_bay[o]
                    window = (((fl > 0.9) and (fl < 2.3) and (hz > 3.0)) or
                              ((hz > 0.4) and (hz < 2.6))) and (bay > 0.45) and \
                        (bay < b_bay[o] - 0.45)
                    lam = min(max(nx * sun_hx + ny * sun_hy, 0.0), 1.0) * cos_el
                    light = ambient + (1 - ambient) * 1.4 * lam
                    for ch in range(3):
                        if window:
                            g = 0.16 if ch == 0 else (0.2 if ch == 1 else 0.26)
                            base = g + 0.12 * coarse
                        else:
                            base = obj_rgb[o, ch] * (0.9 + 0.2 * fine)
                        col[ch] = base * light
                    lab[c, r] = o
                elif o > nb:  # tree: leaves, or the trunk below the crown
                    if hz < crown_base[o]:
                        col[0], col[1], col[2] = 0.3, 0.22, 0.15
                    else:
                        for ch in range(3):
                            col[ch] = obj_rgb[o, ch] * (0.55 + 0.7 * fine) * \
                                (0.8 + 0.3 * coarse)
                    lab[c, r] = o
                else:
                    _ground(kind_hit[c, r], hx, hy, palette, fine_tex, coarse_tex, fine_m,
                            coarse_m, col)
                    lab[c, r] = 0
            # distance fog
            fog = 1.0 - math.exp(-dist / fog_m)
            for ch in range(3):
                rgb[c, r, ch] = col[ch] - fog * (col[ch] - sky_horizon[ch])
