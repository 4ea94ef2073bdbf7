"""Road network: varied grid, diagonal avenues and curved roads; graph; rasterisation."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ciper_ros.synth.world import Kind, RoadGraph

SIDEWALK_M = 2.5
MARK_M = 0.15          # painted line width
DASH_M, GAP_M = 3.0, 6.0


@dataclass
class Road:
    points_m: np.ndarray  # (n, 2) centre line
    width_m: float
    lanes: int


def arc_length(points: np.ndarray) -> np.ndarray:
    """Cumulative length (n,) along a polyline (n, 2), starting at 0."""
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def point_on_polyline(points: np.ndarray, s: np.ndarray,
                      t: float) -> tuple[np.ndarray, np.ndarray]:
    """Point at arc length ``t`` and the unit direction of its segment (``s`` = arc_length)."""
    p = np.array([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])])
    k = min(max(int(np.searchsorted(s, t)), 1), len(points) - 1)
    d = points[k] - points[k - 1]
    return p, d / (np.linalg.norm(d) + 1e-9)


def _resample(points: np.ndarray, step_m: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(np.ceil(s[-1] / step_m)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])], -1)


def generate_roads(rng: np.random.Generator, size_m: float) -> list[Road]:
    """Centre lines of a city ``size_m`` square centred on (0, 0)."""
    half = size_m / 2.0
    ext = half + 15.0  # roads run off the map edge
    roads: list[Road] = []

    def grid_positions() -> list[float]:
        pos, p = [], -half + rng.uniform(25.0, 70.0)
        while p < half - 20.0:
            pos.append(p)
            p += rng.uniform(55.0, 150.0)
        return pos

    xs, ys = grid_positions(), grid_positions()
    # lines that are not quite parallel: each end jittered independently
    v_lines = [np.array([[x + rng.uniform(-0.04, 0.04) * size_m, -ext],
                         [x + rng.uniform(-0.04, 0.04) * size_m, ext]]) for x in xs]
    h_lines = [np.array([[-ext, y + rng.uniform(-0.04, 0.04) * size_m],
                         [ext, y + rng.uniform(-0.04, 0.04) * size_m]]) for y in ys]
    major_v = set(rng.choice(len(v_lines), size=max(1, len(v_lines) // 3), replace=False)) \
        if v_lines else set()
    major_h = set(rng.choice(len(h_lines), size=max(1, len(h_lines) // 3), replace=False)) \
        if h_lines else set()

    def split_and_drop(line: np.ndarray, crossers: list[np.ndarray], major: bool) -> None:
        # cut the line at its crossings; drop some inner minor pieces (T-junctions, big blocks)
        ts = sorted(t for c in crossers for t in [_line_param(line, c)] if t is not None)
        cuts = [0.0, *ts, 1.0]
        keep = [major or not (0 < i < len(cuts) - 2) or rng.random() > 0.15
                for i in range(len(cuts) - 1)]
        start = None
        for i, k in enumerate(keep + [False]):
            if k and start is None:
                start = i
            if not k and start is not None:
                a, b = cuts[start], cuts[i]
                pts = line[0] + np.outer([a, b], line[1] - line[0])
                width, lanes = (16.0, 4) if major else (rng.uniform(8.0, 10.0), 2)
                roads.append(Road(_resample(pts, 5.0), width, lanes))
                start = None

    for i, line in enumerate(v_lines):
        split_and_drop(line, h_lines, i in major_v)
    for i, line in enumerate(h_lines):
        split_and_drop(line, v_lines, i in major_h)

    # diagonal avenues through the city
    for _ in range(max(1, round(size_m / 900.0))):
        c = rng.uniform(-0.25, 0.25, 2) * size_m
        ang = rng.uniform(np.radians(25), np.radians(65)) + (np.pi / 2 if rng.random() < .5 else 0)
        d = np.array([np.cos(ang), np.sin(ang)]) * size_m * 1.5
        roads.append(Road(_clip_to_square(_resample(np.stack([c - d, c + d]), 5.0), ext),
                          14.0, 4))
    # curved roads: arcs of circles
    for _ in range(max(1, round(size_m / 1200.0))):
        center = rng.uniform(-0.5, 0.5, 2) * size_m
        radius = rng.uniform(0.25, 0.45) * size_m
        a0 = rng.uniform(0, 2 * np.pi)
        a = np.linspace(a0, a0 + rng.uniform(np.radians(70), np.radians(140)),
                        max(8, int(radius * 1.3 / 5.0)))
        pts = center + radius * np.stack([np.cos(a), np.sin(a)], -1)
        pts = _clip_to_square(pts, ext)
        if len(pts) >= 2:
            roads.append(Road(pts, rng.uniform(8.0, 11.0), 2))
    return roads


def _line_param(line: np.ndarray, other: np.ndarray) -> float | None:
    """Parameter in (0, 1) along ``line`` where it crosses segment ``other``, else None."""
    p, r = line[0], line[1] - line[0]
    q, s = other[0], other[1] - other[0]
    den = r[0] * s[1] - r[1] * s[0]
    if abs(den) < 1e-12:
        return None
    t = ((q - p)[0] * s[1] - (q - p)[1] * s[0]) / den
    u = ((q - p)[0] * r[1] - (q - p)[1] * r[0]) / den
    return t if 0.0 < t < 1.0 and 0.0 <= u <= 1.0 else None


def _clip_to_square(points: np.ndarray, ext: float) -> np.ndarray:
    inside = np.all(np.abs(points) <= ext, axis=1)
    if not inside.any():
        return points[:0]
    idx = np.flatnonzero(inside)
    return points[idx[0]:idx[-1] + 1]


# ---------------------------------------------------------------------------- graph
def build_graph(roads: list[Road], *, merge_m: float = 2.0) -> RoadGraph:
    """Split road centre lines at their crossings into a graph of drivable edges."""
    roads = [r for r in roads if len(r.points_m) >= 2]
    cuts: list[list[tuple[float, np.ndarray]]] = [[] for _ in roads]  # (arc length, point)
    seg = [(r.points_m[:-1], r.points_m[1:]) for r in roads]
    arclen = [np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(r.points_m, axis=0),
                                                             axis=1))]) for r in roads]
    for i in range(len(roads)):
        for j in range(i + 1, len(roads)):
            a0, a1 = seg[i]
            b0, b1 = seg[j]
            r = (a1 - a0)[:, None, :]
            s = (b1 - b0)[None, :, :]
            qp = b0[None, :, :] - a0[:, None, :]
            den = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
            with np.errstate(divide='ignore', invalid='ignore'):
                t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / den
                u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / den
            hit = (np.abs(den) > 1e-12) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
            for si, sj in zip(*np.nonzero(hit), strict=True):
                point = a0[si] + t[si, sj] * (a1 - a0)[si]
                cuts[i].append((arclen[i][si] + t[si, sj] * np.linalg.norm((a1 - a0)[si]),
                                point))
                cuts[j].append((arclen[j][sj] + u[si, sj] * np.linalg.norm((b1 - b0)[sj]),
                                point))
    nodes: list[np.ndarray] = []

    def node_id(p: np.ndarray) -> int:
        for k, q in enumerate(nodes):
            if np.hypot(*(q - p)) < merge_m:
                return k
        nodes.append(p)
        return len(nodes) - 1

    edges, edge_pts, widths, lanes = [], [], [], []
    for ri, road in enumerate(roads):
        s = arclen[ri]
        stops = sorted([(0.0, road.points_m[0]), (s[-1], road.points_m[-1])] + cuts[ri],
                       key=lambda c: c[0])
        for (sa, pa), (sb, pb) in zip(stops[:-1], stops[1:], strict=True):
            if sb - sa < 1.0:
                continue
            inner = (s > sa) & (s < sb)
            pts = np.concatenate([pa[None], road.points_m[inner], pb[None]])
            a, b = node_id(pa), node_id(pb)
            if a == b:
                continue
            edges.append((a, b))
            edge_pts.append(pts)
            widths.append(road.width_m)
            lanes.append(road.lanes)
    return RoadGraph(nodes_xy_m=np.array(nodes).reshape(-1, 2), edges=edges,
                     edge_points_m=edge_pts, edge_width_m=np.array(widths),
                     edge_lanes=np.array(lanes, np.int64))


# ---------------------------------------------------------------------------- raster
def draw_roads(kind: np.ndarray, roads: list[Road], graph: RoadGraph, *, res_m: float,
               to_px, rng: np.random.Generator) -> None:
    """Paint sidewalks, asphalt, lane and centre markings and crosswalks into ``kind``."""
    def poly(points_m: np.ndarray) -> np.ndarray:
        col, row = to_px(points_m[:, 0], points_m[:, 1])
        return np.round(np.stack([col, row], -1) * 16 - 8).astype(np.int32)

    def thick(w_m: float) -> int:
        return max(1, int(round(w_m / res_m)))

    for road in roads:
        cv2.polylines(kind, [poly(road.points_m)], False, int(Kind.SIDEWALK),
                      thickness=thick(road.width_m + 2 * SIDEWALK_M), shift=4)
    for road in roads:
        cv2.polylines(kind, [poly(road.points_m)], False, int(Kind.ROAD),
                      thickness=thick(road.width_m), shift=4)

    # markings are painted on a separate layer, cleared inside intersections, then merged
    marks = np.zeros_like(kind)
    for road in roads:
        pts = road.points_m
        if road.lanes >= 4:
            for off in (-0.2, 0.2):  # double centre line
                cv2.polylines(marks, [poly(_offset(pts, off))], False, int(Kind.CENTER_MARK),
                              thickness=thick(MARK_M), shift=4)
            for off in (-road.width_m / 4, road.width_m / 4):
                _dashes(marks, poly, _offset(pts, off), thick(MARK_M))
        else:
            _dashes(marks, poly, pts, thick(MARK_M))
    degree = np.bincount(np.asarray(graph.edges).ravel(), minlength=len(graph.nodes_xy_m)) \
        if graph.edges else np.zeros(0, int)
    clear = np.zeros_like(kind)
    junctions = [k for k in range(len(graph.nodes_xy_m)) if degree[k] >= 3]
    for k in junctions:
        inc = [e for e, (a, b) in enumerate(graph.edges) if k in (a, b)]
        r = max(graph.edge_width_m[e] for e in inc) / 2 + SIDEWALK_M
        col, row = to_px(*graph.nodes_xy_m[k])
        cv2.circle(clear, (int(col), int(row)), int(r / res_m), 1, -1)
    marks[clear > 0] = 0
    on_road = (kind == Kind.ROAD) & (marks > 0)
    kind[on_road] = marks[on_road]

    # zebra crossings just outside most junctions
    for k in junctions:
        inc = [e for e, (a, b) in enumerate(graph.edges) if k in (a, b)]
        r = max(graph.edge_width_m[e] for e in inc) / 2 + SIDEWALK_M
        for e in inc:
            if rng.random() > 0.7:
                continue
            pts = graph.edge_points_m[e] if graph.edges[e][0] == k else \
                graph.edge_points_m[e][::-1]
            d = pts[1] - pts[0]
            d = d / (np.linalg.norm(d) + 1e-9)
            n = np.array([-d[1], d[0]])
            w = graph.edge_width_m[e]
            for o in np.arange(-w / 2 + 0.5, w / 2 - 0.3, 1.0):
                a = pts[0] + d * (r + 0.5) + n * o
                b = a + d * 3.0
                cv2.polylines(kind, [poly(np.stack([a, b]))], False, int(Kind.CROSSWALK),
                              thickness=thick(0.5), shift=4)


def _offset(points: np.ndarray, off_m: float) -> np.ndarray:
    d = np.gradient(points, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    return points + off_m * np.stack([-d[:, 1], d[:, 0]], -1)


def _dashes(layer: np.ndarray, poly, points: np.ndarray, thickness: int) -> None:
    dense = _resample(points, 0.5)
    s = np.arange(len(dense)) * 0.5
    on = (s % (DASH_M + GAP_M)) < DASH_M
    starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
    ends = np.flatnonzero(on & ~np.r_[on[1:], False])
    segs = [poly(dense[a:b + 1]) for a, b in zip(starts, ends, strict=True) if b > a]
    if segs:
        cv2.polylines(layer, segs, False, int(Kind.LANE_MARK), thickness=thickness, shift=4)
