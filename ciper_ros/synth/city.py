"""Procedural city generator: districts, roads, blocks with buildings, trees, parked cars."""

from __future__ import annotations

import cv2
import numpy as np

from ciper_ros.synth.roads import (
    arc_length,
    build_graph,
    draw_roads,
    generate_roads,
    point_on_polyline,
    SIDEWALK_M,
)
from ciper_ros.synth.world import (
    Buildings,
    Cars,
    CityConfig,
    District,
    Kind,
    RoadGraph,
    Trees,
    World,
)
from ciper_ros.util.errors import UserError

FACADE_PALETTE = np.array([[196, 180, 150], [170, 160, 150], [150, 80, 60], [225, 220, 210],
                           [120, 130, 140], [200, 190, 120], [110, 90, 80], [185, 200, 205]])
ROOF_PALETTE = np.array([[80, 80, 85], [150, 150, 150], [170, 160, 140], [150, 70, 50],
                         [95, 120, 70], [215, 215, 210], [110, 100, 95], [60, 65, 75]])
TREE_PALETTE = np.array([[60, 110, 45], [75, 125, 50], [50, 95, 40], [90, 130, 60]])
CAR_PALETTE = np.array([[230, 230, 230], [25, 25, 28], [160, 160, 165], [110, 110, 115],
                        [170, 30, 30], [30, 60, 140], [200, 200, 190], [60, 90, 60]])


def _jitter(rng: np.random.Generator, palette: np.ndarray, amount: int = 18) -> np.ndarray:
    c = palette[rng.integers(len(palette))] + rng.integers(-amount, amount + 1, 3)
    return np.clip(c, 0, 255).astype(np.uint8)


class _Builder:
    """Mutable state while a city is generated (rasters + growing object tables)."""

    def __init__(self, config: CityConfig) -> None:
        self.config = config
        self.n = int(round(config.size_m / config.res_m))
        self.res = config.res_m
        self.x0 = -self.n * self.res / 2.0
        self.y1 = self.n * self.res / 2.0
        self.height = np.zeros((self.n, self.n), np.float16)  # 2 bytes/px: a 3 km city fits
        self.kind = np.zeros((self.n, self.n), np.uint8)
        self.obj = np.zeros((self.n, self.n), np.uint16)
        self.bld: dict[str, list] = {k: [] for k in Buildings.__dataclass_fields__}
        self.trees: dict[str, list] = {k: [] for k in Trees.__dataclass_fields__}
        self.cars: dict[str, list] = {k: [] for k in Cars.__dataclass_fields__}

    def to_px(self, x_m, y_m):
        return (np.asarray(x_m) - self.x0) / self.res, (self.y1 - np.asarray(y_m)) / self.res

    def to_xy(self, col, row):
        return self.x0 + np.asarray(col) * self.res, self.y1 - np.asarray(row) * self.res

    def poly_px(self, pts_m: np.ndarray) -> np.ndarray:
        col, row = self.to_px(pts_m[:, 0], pts_m[:, 1])
        return np.round(np.stack([col, row], -1) * 16 - 8).astype(np.int32)


def _district_of(seeds: np.ndarray, xy: np.ndarray) -> int:
    d = np.linalg.norm(seeds[:, :2] - xy, axis=1)
    return int(seeds[np.argmin(d), 2])


def generate_city(config: CityConfig) -> World:
    """Generate a city; the same ``config`` always gives the same world, byte for byte."""
    ss = np.random.SeedSequence([config.seed, 0xC1BE])
    rng_roads, rng_blocks, rng_trees, rng_cars, rng_marks = (
        np.random.default_rng(s) for s in ss.spawn(5))
    b = _Builder(config)
    size = config.size_m

    # districts: downtown in the middle, a few residential / industrial seeds around it
    n_seeds = 3 + int(size / 500)
    seeds = [(0.0, 0.0, int(District.DOWNTOWN))]
    for _ in range(n_seeds):
        xy = rng_blocks.uniform(-0.5, 0.5, 2) * size
        style = rng_blocks.choice([District.RESIDENTIAL, District.RESIDENTIAL,
                                   District.INDUSTRIAL, District.DOWNTOWN])
        seeds.append((xy[0], xy[1], int(style)))
    seeds = np.array(seeds)

    # roads
    roads = generate_roads(rng_roads, size)
    graph = build_graph(roads)
    draw_roads(b.kind, roads, graph, res_m=b.res, to_px=b.to_px, rng=rng_marks)

    # blocks: what roads and sidewalks leave free
    free = (b.kind == Kind.OUT).astype(np.uint8)
    # 16-bit labels (blocks number in the hundreds) halve the largest temporary
    n_blocks, labels, stats, _ = cv2.connectedComponentsWithStats(free, connectivity=4,
                                                                  ltype=cv2.CV_16U)
    del free
    min_area_px = 150.0 / b.res ** 2
    for i in range(1, n_blocks):
        x, y, w, h, area = stats[i]
        if area < min_area_px:
            b.kind[y:y + h, x:x + w][labels[y:y + h, x:x + w] == i] = Kind.GRASS
            continue
        mask = (labels[y:y + h, x:x + w] == i)
        _fill_block(b, rng_blocks, seeds, mask, x, y)

    _street_trees(b, rng_trees, seeds, graph)
    _park_cars(b, rng_cars, graph)

    bld = {k: np.array(v) for k, v in b.bld.items()}
    buildings = Buildings(
        center_xy_m=bld['center_xy_m'].reshape(-1, 2), yaw_rad=bld['yaw_rad'].reshape(-1),
        half_extent_m=bld['half_extent_m'].reshape(-1, 2),
        height_m=bld['height_m'].reshape(-1),
        facade_rgb=bld['facade_rgb'].reshape(-1, 3).astype(np.uint8),
        roof_rgb=bld['roof_rgb'].reshape(-1, 3).astype(np.uint8),
        floor_m=bld['floor_m'].reshape(-1), bay_m=bld['bay_m'].reshape(-1))
    tr = {k: np.array(v) for k, v in b.trees.items()}
    trees = Trees(center_xy_m=tr['center_xy_m'].reshape(-1, 2),
                  radius_m=tr['radius_m'].reshape(-1), height_m=tr['height_m'].reshape(-1),
                  rgb=tr['rgb'].reshape(-1, 3).astype(np.uint8))
    cr = {k: np.array(v) for k, v in b.cars.items()}
    cars = Cars(center_xy_m=cr['center_xy_m'].reshape(-1, 2),
                yaw_rad=cr['yaw_rad'].reshape(-1), size_m=cr['size_m'].reshape(-1, 3),
                rgb=cr['rgb'].reshape(-1, 3).astype(np.uint8),
                epochs=cr['epochs'].reshape(-1).astype(np.uint8))
    # object ids: buildings were numbered 1..B while drawing; trees follow
    return World(config=config, height_m=b.height, kind=b.kind,
                 obj=b.obj, buildings=buildings, trees=trees, cars=cars,
                 roads=RoadGraph(graph.nodes_xy_m, graph.edges, graph.edge_points_m,
                                 graph.edge_width_m, graph.edge_lanes),
                 district_seeds=seeds)


# ---------------------------------------------------------------------------- blocks
def _block_frame(b: _Builder, mask: np.ndarray, x: int, y: int):
    """Oriented rectangle of a block: origin, unit axes u/v (metres), extents W/H."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    # (4, 2) corners in crop pixels (col, row)
    box = cv2.boxPoints(cv2.minAreaRect(np.concatenate(contours)))
    xs, ys = b.to_xy(box[:, 0] + x + 0.5, box[:, 1] + y + 0.5)
    c = np.stack([xs, ys], -1)
    a, bb = c[1] - c[0], c[3] - c[0]
    W, H = np.linalg.norm(a), np.linalg.norm(bb)
    return c[0], a / max(W, 1e-6), bb / max(H, 1e-6), W, H


def _fill_block(b: _Builder, rng: np.random.Generator, seeds: np.ndarray, mask: np.ndarray,
                x: int, y: int) -> None:
    sub_kind = b.kind[y:y + mask.shape[0], x:x + mask.shape[1]]
    cx, cy = b.to_xy(x + mask.shape[1] / 2, y + mask.shape[0] / 2)
    district = _district_of(seeds, np.array([cx, cy]))
    o, u, v, W, H = _block_frame(b, mask, x, y)
    # keep buildings 1 m off the sidewalk
    setback = max(1, int(round(1.0 / b.res)))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * setback + 1,) * 2, np.uint8)) > 0

    def local(s, t):
        return o + np.outer(s, u) + np.outer(t, v) if np.ndim(s) else o + s * u + t * v

    roll = rng.random()
    if district == District.DOWNTOWN:
        if roll < 0.15 or min(W, H) < 18:
            sub_kind[mask] = Kind.PLAZA
            _scatter_trees(b, rng, mask, x, y, density=0.004, where=Kind.PLAZA)
            return
        sub_kind[mask] = Kind.PLAZA
        depth = min(rng.uniform(12, 22), min(W, H) / 2)
        for (s0, s1, t0, t1, along_s) in [(0, W, 0, depth, True), (0, W, H - depth, H, True),
                                          (0, depth, depth, H - depth, False),
                                          (W - depth, W, depth, H - depth, False)]:
            _lots(b, rng, inner, x, y, local, s0, s1, t0, t1, along_s, u, v,
                  height=lambda: float(np.clip(rng.lognormal(np.log(24), 0.45), 10, 80)))
    elif district == District.RESIDENTIAL:
        if roll < 0.15:
            sub_kind[mask] = Kind.GRASS
            _scatter_trees(b, rng, mask, x, y, density=0.01, where=Kind.GRASS)
            return
        sub_kind[mask] = Kind.GRASS
        cell = rng.uniform(16, 24)
        for s in np.arange(2, W - cell + 1e-6, cell):
            for t in np.arange(2, H - cell + 1e-6, cell):
                if rng.random() < 0.12:
                    continue
                bw, bh = rng.uniform(8, 13), rng.uniform(8, 13)
                bw, bh = min(bw, cell - 3), min(bh, cell - 3)
                ds, dt = rng.uniform(0, cell - bw - 2), rng.uniform(0, cell - bh - 2)
                _building(b, rng, inner, x, y,
                          local(np.array([s + ds, s + ds + bw, s + ds + bw, s + ds]),
                                np.array([t + dt, t + dt, t + dt + bh, t + dt + bh])),
                          u, height=float(rng.uniform(5.5, 11.0)))
        _scatter_trees(b, rng, mask, x, y, density=0.004, where=Kind.GRASS)
    else:  # industrial: big halls on asphalt with parking bays
        sub_kind[mask] = Kind.PARKING
        n = 1 if W < 60 else int(rng.integers(1, 4))
        edges = np.linspace(0, W, n + 1)
        for s0, s1 in zip(edges[:-1], edges[1:], strict=True):
            fs, ft = rng.uniform(0.55, 0.8), rng.uniform(0.5, 0.8)
            bw, bh = (s1 - s0) * fs, H * ft
            ds = rng.uniform(2, max(2.1, s1 - s0 - bw - 2))
            dt = rng.uniform(2, max(2.1, H - bh - 2))
            _building(b, rng, inner, x, y,
                      local(np.array([s0 + ds, s0 + ds + bw, s0 + ds + bw, s0 + ds]),
                            np.array([dt, dt, dt + bh, dt + bh])),
                      u, height=float(rng.uniform(6.0, 14.0)))
        _parking_bays(b, rng, mask, x, y, local, u, v, W, H)


def _lots(b, rng, inner, x, y, local, s0, s1, t0, t1, along_s, u, v, height) -> None:
    length = (s1 - s0) if along_s else (t1 - t0)
    p = 0.0
    while p < length - 6.0:
        lot = min(rng.uniform(10, 30), length - p)
        gap = rng.uniform(0.0, 1.5)
        if along_s:
            ss = np.array([s0 + p, s0 + p + lot - gap] * 1)
            quad = local(np.array([ss[0], ss[1], ss[1], ss[0]]), np.array([t0, t0, t1, t1]))
        else:
            tt = np.array([t0 + p, t0 + p + lot - gap])
            quad = local(np.array([s0, s1, s1, s0]), np.array([tt[0], tt[0], tt[1], tt[1]]))
        _building(b, rng, inner, x, y, quad, u, height=height())
        p += lot


def _building(b: _Builder, rng, inner: np.ndarray, x: int, y: int, quad_m: np.ndarray,
              axis_u: np.ndarray, *, height: float) -> None:
    """Rasterise a quadrilateral building clipped to the block's inner area."""
    bid = len(b.bld['height_m']) + 1
    if bid >= 60000:
        raise UserError('city has more than 60000 buildings; use a smaller size_m')
    h, w = inner.shape
    local = np.zeros((h, w), np.uint8)
    pts = b.poly_px(quad_m) - np.array([x, y]) * 16
    cv2.fillPoly(local, [pts], 1, shift=4)
    sel = (local > 0) & inner
    if sel.sum() * b.res ** 2 < 20.0:
        return
    sub = (slice(y, y + h), slice(x, x + w))
    b.obj[sub][sel] = bid
    b.kind[sub][sel] = Kind.BUILDING
    b.height[sub][sel] = height
    center = quad_m.mean(axis=0)
    rel = quad_m - center
    yaw = float(np.arctan2(axis_u[1], axis_u[0]))
    c, s = np.cos(yaw), np.sin(yaw)
    a_ext = np.abs(rel @ np.array([c, s])).max()
    b_ext = np.abs(rel @ np.array([-s, c])).max()
    b.bld['center_xy_m'].append(center)
    b.bld['yaw_rad'].append(yaw)
    b.bld['half_extent_m'].append([a_ext, b_ext])
    b.bld['height_m'].append(height)
    b.bld['facade_rgb'].append(_jitter(rng, FACADE_PALETTE))
    b.bld['roof_rgb'].append(_jitter(rng, ROOF_PALETTE))  # independent of the facade
    b.bld['floor_m'].append(rng.uniform(3.0, 3.8))
    b.bld['bay_m'].append(rng.uniform(2.2, 3.8))


def _parking_bays(b, rng, mask, x, y, local, u, v, W, H) -> None:
    """Painted bay lines in free asphalt of an industrial block, with parked cars."""
    sub_kind = b.kind[y:y + mask.shape[0], x:x + mask.shape[1]]
    lines = np.zeros(mask.shape, np.uint8)
    for t0 in np.arange(3.0, H - 5.0, 14.0):
        for s in np.arange(3.0, W - 3.0, 2.6):
            seg = local(np.array([s, s]), np.array([t0, t0 + 5.0]))
            cv2.polylines(lines, [b.poly_px(seg) - np.array([x, y]) * 16], False, 1,
                          thickness=max(1, int(round(0.15 / b.res))), shift=4)
            if rng.random() < 0.45:
                c = local(s + 1.3, t0 + 2.5)
                _add_car(b, rng, c, float(np.arctan2(v[1], v[0])), check_kind=Kind.PARKING)
    sel = (lines > 0) & (sub_kind == Kind.PARKING)
    sub_kind[sel] = Kind.PARKING_MARK


# ---------------------------------------------------------------------------- trees
def _add_tree(b: _Builder, rng, xy: np.ndarray, radius: float, height: float,
              allowed: tuple[int, ...]) -> None:
    col, row = b.to_px(xy[0], xy[1])
    r_px = radius / b.res
    c0, c1 = int(np.floor(col - r_px)), int(np.ceil(col + r_px)) + 1
    r0, r1 = int(np.floor(row - r_px)), int(np.ceil(row + r_px)) + 1
    if c0 < 0 or r0 < 0 or c1 > b.n or r1 > b.n:
        return
    rr, cc = np.mgrid[r0:r1, c0:c1]
    d = np.hypot(cc + 0.5 - col, rr + 0.5 - row) / r_px
    sub = (slice(r0, r1), slice(c0, c1))
    trunk_ok = b.kind[int(row), int(col)] in allowed
    if not trunk_ok:
        return
    crown = d < 1.0
    # a dome: 65 % of the height at the rim, full height at the trunk
    h = height * (0.65 + 0.35 * np.sqrt(np.clip(1.0 - d ** 2, 0.0, 1.0)))
    sel = crown & (b.kind[sub] != Kind.BUILDING) & (h > b.height[sub])
    tid = len(b.trees['height_m'])
    b.height[sub][sel] = h[sel]
    b.kind[sub][sel] = Kind.TREE
    b.obj[sub][sel] = 60000 + 0 * tid  # provisional; renumbered in _finish_trees
    b.trees['center_xy_m'].append(np.asarray(xy, np.float64))
    b.trees['radius_m'].append(radius)
    b.trees['height_m'].append(height)
    b.trees['rgb'].append(_jitter(rng, TREE_PALETTE, 12))
    b._tree_masks = getattr(b, '_tree_masks', [])
    b._tree_masks.append((sub, sel))


def _scatter_trees(b, rng, mask, x, y, *, density: float, where: int) -> None:
    rr, cc = np.nonzero(mask)
    area_m2 = len(rr) * b.res ** 2
    for _ in range(rng.poisson(area_m2 * density)):
        k = rng.integers(len(rr))
        xy = np.array(b.to_xy(cc[k] + x + 0.5, rr[k] + y + 0.5))
        _add_tree(b, rng, xy, rng.uniform(1.8, 4.0), rng.uniform(5.0, 12.0), (where,))


def _street_trees(b: _Builder, rng, seeds, graph: RoadGraph) -> None:
    for e, pts in enumerate(graph.edge_points_m):
        w = graph.edge_width_m[e]
        s = arc_length(pts)
        mid = pts[len(pts) // 2]
        p_tree = {District.DOWNTOWN: 0.5, District.RESIDENTIAL: 0.8,
                  District.INDUSTRIAL: 0.2}[District(_district_of(seeds, mid))]
        spacing = rng.uniform(8.0, 14.0)
        for side in (-1.0, 1.0):
            if rng.random() > p_tree:
                continue
            for t in np.arange(10.0, s[-1] - 10.0, spacing):
                p, d = point_on_polyline(pts, s, t)
                nrm = np.array([-d[1], d[0]])
                xy = p + side * nrm * (w / 2 + SIDEWALK_M * 0.55)
                _add_tree(b, rng, xy, rng.uniform(1.8, 3.2), rng.uniform(6.0, 11.0),
                          (Kind.SIDEWALK,))
    _finish_trees(b)


def _finish_trees(b: _Builder) -> None:
    """Renumber tree pixels after all buildings: ids B+1..B+T."""
    n_b = len(b.bld['height_m'])
    if n_b + len(b.trees['height_m']) >= 65535:
        raise UserError('city has more than 65535 objects; use a smaller size_m')
    for t, (sub, sel) in enumerate(getattr(b, '_tree_masks', [])):
        # a later tree may have grown over part of this one: only pixels it still owns
        own = sel & (b.obj[sub] == 60000)
        b.obj[sub][own] = n_b + 1 + t
    b._tree_masks = []


# ---------------------------------------------------------------------------- cars
def _add_car(b: _Builder, rng, center: np.ndarray, yaw: float, *, check_kind: int,
             p_aerial: float = 1.0) -> None:
    col, row = b.to_px(center[0], center[1])
    if not (0 <= col < b.n and 0 <= row < b.n) or b.kind[int(row), int(col)] != check_kind:
        return
    # epoch 0 is the aerial capture; drives see the slot occupied independently-ish:
    # a parked car stays with p 0.5, an empty slot fills with p 0.35 (new car, new colour)
    n_ep = b.config.n_drive_epochs
    present = [rng.random() < p_aerial]
    for _ in range(n_ep):
        present.append(rng.random() < (0.5 if present[0] else 0.35))
    size = np.array([rng.uniform(4.0, 5.0), rng.uniform(1.75, 1.95), rng.uniform(1.4, 1.7)])
    colour = _jitter(rng, CAR_PALETTE, 10)
    stay_mask = sum(1 << e for e in range(n_ep + 1) if present[e] and (e == 0 or present[0]))
    new_mask = sum(1 << e for e in range(1, n_ep + 1) if present[e] and not present[0])
    for mask, col_ in ((stay_mask, colour), (new_mask, _jitter(rng, CAR_PALETTE, 10))):
        if mask:
            jit = rng.uniform(-0.3, 0.3, 2) if mask == new_mask else np.zeros(2)
            b.cars['center_xy_m'].append(np.asarray(center) + jit)
            b.cars['yaw_rad'].append(yaw + (rng.uniform(-0.05, 0.05) if mask == new_mask else 0))
            b.cars['size_m'].append(size)
            b.cars['rgb'].append(col_)
            b.cars['epochs'].append(mask)


def _park_cars(b: _Builder, rng, graph: RoadGraph) -> None:
    for e, pts in enumerate(graph.edge_points_m):
        w = graph.edge_width_m[e]
        s = arc_length(pts)
        for side in (-1.0, 1.0):
            for t in np.arange(12.0, s[-1] - 12.0, 6.5):
                p, d = point_on_polyline(pts, s, t)
                nrm = np.array([-d[1], d[0]])
                c = p + side * nrm * (w / 2 - 1.0)  # in the 2 m parking strip
                yaw = float(np.arctan2(d[1], d[0]))
                _add_car(b, rng, c, yaw, check_kind=Kind.ROAD, p_aerial=0.45)
