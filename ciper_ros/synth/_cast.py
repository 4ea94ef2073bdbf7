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
def cast_columns(x, y, z, ca, sa, t, d, d_prev, x0, y1, res, n,
                 height, car_layer, obj_l, kind_l, halo_l, car_h,
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
                lin = row * n + col
                h = height[lin]
                car = car_layer[lin]
                ob = obj_l[lin]
                kd = kind_l[lin]
                if car > 0:
                    h = max(h, car_h[car])
                else:
                    hal = halo_l[lin]
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
                        obj_l[erow * n + ecol] == b
                if entering or (in_bld and crosses):
                    h = max(h, b_height[b])
                    dist = min(max(entry, d_prev[k]), d[k])
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
            # a ray passing under a tree crown (and off its trunk) goes on
            if k < K and os_[k] > nb and z + t[c, r] * ds[k] < crown_base[os_[k]]:
                k2 = K
                for j in range(k, K):
                    if hs[j] - z >= t[c, r] * ds[j]:
                        oj = os_[j]
                        ray_z = z + t[c, r] * ds[j]
                        # free: under the crown, off the trunk, above any car parked there
                        if oj > nb and ray_z < crown_base[oj] and ray_z > car_h[cs[j]]:
                            dx = xs[j] - tree_xy[oj, 0]
                            dy = ys[j] - tree_xy[oj, 1]
                            if dx * dx + dy * dy >= 0.35 * 0.35:
                                continue
                        k2 = j
                        break
                k = k2
            k_hit[c, r] = k
            kk = min(k, K - 1)
            h_hit[c, r] = hs[kk]
            obj_hit[c, r] = os_[kk]
            car_hit[c, r] = cs[kk]
            kind_hit[c, r] = ks[kk]
            d_hit[c, r] = ds[kk]
