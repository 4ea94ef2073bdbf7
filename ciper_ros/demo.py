"""``ciper demo``: the end-to-end job on the embedded default data.

What runs today (before the model and runtime milestones):

1. map store check: build a web-mercator MBTiles map of a metric test pattern around a
   datum (a grid plus markers at known positions), read it back through the map store, cut
   north-up metric crops at many centres and sizes, find the markers in every crop and
   measure how far each lands from where WGS84 geodesy puts it;
2. the synthetic city: generate a small city, write its aerial MBTiles map, record a drive
   as a rosbag2 (camera, GNSS, odometry, ground truth), read the bag back and measure the
   GNSS error against ground truth, and write a preview sheet of aerial/ground pairs.

Writes PNGs and the numbers (JSON) and prints the headline.
"""

from __future__ import annotations

import json
from pathlib import Path
import time

import cv2
import numpy as np

from ciper_ros.geo import LatLonBounds, LocalTangentPlane
from ciper_ros.maps import MapStoreError, MBTilesWriter, open_store, write_pyramid
from ciper_ros.maps.pattern import (
    compose_samplers,
    find_marker_centroids,
    grid_sampler,
    marker_sampler,
)

MARKER_RGB = (0, 255, 255)


def marker_grid_xy_m(size_m: float, *, spacing_m: float = 12.0, seed: int = 0) -> np.ndarray:
    """Markers on a jittered grid (never closer than ~spacing/2), (N, 2) east/north m."""
    rng = np.random.default_rng(seed)
    half = size_m / 2.0 - spacing_m
    ticks = np.arange(-half, half + 1e-9, spacing_m)
    xy = np.stack(np.meshgrid(ticks, ticks), axis=-1).reshape(-1, 2)
    return xy + rng.uniform(-spacing_m / 4, spacing_m / 4, xy.shape)


def crop_errors_px(crop, plane: LocalTangentPlane, markers_xy_m: np.ndarray,
                   radius_m: float) -> np.ndarray:
    """Distances (px) between markers found in a crop and where geodesy puts them."""
    expected = crop.uv_px_from_latlon(plane.latlon_from_xy_m(markers_xy_m))
    inside = np.all((expected > radius_m / crop.m_per_px + 2)
                    & (expected < crop.side_px - radius_m / crop.m_per_px - 2), axis=1)
    expected = expected[inside]
    found = find_marker_centroids(crop.image_rgb)
    if len(expected) == 0:
        return np.zeros(0)
    if len(found) == 0:
        return np.full(len(expected), np.inf)
    d = np.linalg.norm(expected[:, None, :] - found[None, :, :], axis=-1)
    return d.min(axis=1)  # a missing marker shows up as a large error, never silently


def _existing_params(map_path: Path) -> str | None:
    if not map_path.is_file():
        return None
    try:
        with open_store(map_path) as store:
            return store.metadata.extra.get('ciper_demo')
    except MapStoreError:
        return None


def run_demo(out_dir: str | Path, *, center_latlon_deg: tuple[float, float] = (48.137, 11.575),
             size_m: float = 360.0, zooms: tuple[int, ...] = (18, 19, 20),
             marker_radius_m: float = 1.2) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plane = LocalTangentPlane(*center_latlon_deg)
    markers = marker_grid_xy_m(size_m)
    h = size_m / 2.0
    ll = plane.latlon_from_xy_m(np.array([[-h, -h], [h, h]]))
    bounds = LatLonBounds(ll[0, 1], ll[0, 0], ll[1, 1], ll[1, 0])
    map_path = out / 'pattern.mbtiles'

    params = json.dumps({'center': list(center_latlon_deg), 'size_m': size_m,
                         'zooms': list(zooms), 'radius_m': marker_radius_m})
    t0 = time.perf_counter()
    n_tiles = 0
    if _existing_params(map_path) == params:
        print(f'[1/5] reusing {map_path} (same settings)')
    else:
        print(f'[1/5] writing {map_path}: {size_m:g} m square at {center_latlon_deg}, '
              f'zooms {list(zooms)}, {len(markers)} markers')
        sampler = compose_samplers(grid_sampler(spacing_m=10.0, muted=True),
                                   (marker_sampler(markers, radius_m=marker_radius_m,
                                                   marker_rgb=MARKER_RGB), MARKER_RGB))
        with MBTilesWriter(map_path, name='ciper demo pattern', fmt='png', bounds=bounds,
                           resume=True, overwrite=True,
                           metadata={'ciper_demo': params}) as writer:
            n_tiles = write_pyramid(writer, plane=plane, sampler=sampler, bounds=bounds,
                                    zooms=zooms, desc='map tiles')
    t_write = time.perf_counter() - t0

    print('[2/5] cropping the map at 12 centres x 3 sizes and locating markers')
    rng = np.random.default_rng(1)
    sizes = [(48.0, 128), (96.0, 256), (160.0, 512)]
    errors, sheet = [], []
    t_crop = 0.0
    with open_store(map_path) as store:
        for i in range(12):
            row = []
            for side_m, side_px in sizes:
                reach = max(h - side_m / 2.0 - 2.0, 0.0)
                c_xy = rng.uniform(-reach, reach, 2)
                c_ll = plane.latlon_from_xy_m(c_xy)[0]
                t0 = time.perf_counter()
                crop = store.crop((c_ll[0], c_ll[1]), side_m, side_px)
                t_crop += time.perf_counter() - t0
                errors.append(crop_errors_px(crop, plane, markers, marker_radius_m))
                if i < 4:
                    row.append(cv2.resize(crop.image_rgb, (256, 256),
                                          interpolation=cv2.INTER_AREA))
            if row:
                sheet.append(np.concatenate(row, axis=1))
        n_crops = 12 * len(sizes)
    err = np.concatenate(errors)

    print('[3/5] writing the contact sheet and metrics')
    sheet_path = out / 'crops.png'
    cv2.imwrite(str(sheet_path), cv2.cvtColor(np.concatenate(sheet, axis=0), cv2.COLOR_RGB2BGR))
    metrics = {
        'map': str(map_path),
        'tiles_written': n_tiles,
        'map_write_s': round(t_write, 2),
        'crops': n_crops,
        'crop_ms_mean': round(1000 * t_crop / n_crops, 2),
        'markers_checked': int(err.size),
        'marker_error_px_median': round(float(np.median(err)), 4),
        'marker_error_px_max': round(float(np.max(err)), 4),
        'marker_error_within_1px': float(np.mean(err <= 1.0)),
        'contact_sheet': str(sheet_path),
    }
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2) + '\n')
    print(f"map: {n_tiles} tiles written in {t_write:.1f} s; {n_crops} crops, "
          f"{metrics['crop_ms_mean']:.1f} ms each")
    print(f"crop geolocation: {err.size} markers, median error "
          f"{metrics['marker_error_px_median']:.3f} px, max {metrics['marker_error_px_max']:.3f} "
          f'px ({100 * metrics["marker_error_within_1px"]:.1f} % within 1 px)')
    metrics.update(run_city_demo(out))
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2) + '\n')
    print(f'outputs in {out}/: pattern.mbtiles, crops.png, city/, drive/, preview.png, '
          f'metrics.json')
    return metrics


def run_city_demo(out: Path, *, seed: int = 0, size_m: float = 400.0,
                  duration_s: float = 20.0) -> dict:
    """Run steps 4-5: a synthetic city, its aerial map, a recorded drive, a preview sheet."""
    from rosbags.rosbag2 import Reader

    from ciper_ros.bag import messages as msgs
    from ciper_ros.synth.drivebag import DriveConfig, TOPICS, write_drive_bag
    from ciper_ros.synth.folder import MAP_FILE, write_city_folder
    from ciper_ros.synth.pairs import PairConfig, sample_road_pose
    from ciper_ros.synth.preview import draw_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import CityConfig

    print(f'[4/5] synthetic city (seed {seed}, {size_m:g} m): world, aerial map, '
          f'{duration_s:g} s drive')
    world, t = write_city_folder(out / 'city', CityConfig(seed=seed, size_m=size_m))
    t_city, t_aerial = t['generate_s'], t['aerial_s']
    t0 = time.perf_counter()
    bag = write_drive_bag(world, out / 'drive', DriveConfig(duration_s=duration_s, seed=seed),
                          overwrite=True)
    t_drive = time.perf_counter() - t0

    # read the bag back: GNSS error against ground truth
    truth, fixes, frames = [], [], 0
    with Reader(bag) as reader:
        for conn, t_ns, raw in reader.messages():
            if conn.topic == TOPICS['truth']:
                p = msgs.deserialize(raw, conn.msgtype).pose.position
                truth.append((t_ns, p.x, p.y))
            elif conn.topic == TOPICS['gnss']:
                f = msgs.deserialize(raw, conn.msgtype)
                if f.status.status >= 0:
                    fixes.append((t_ns, f.latitude, f.longitude))
            elif conn.topic == TOPICS['compressed']:
                frames += 1
    tt = np.array([t for t, _, _ in truth])
    txy = np.array([(x, y) for _, x, y in truth])
    gxy = world.plane.xy_m_from_latlon(np.array([(la, lo) for _, la, lo in fixes]))
    k = np.abs(tt[None, :] - np.array([t for t, _, _ in fixes])[:, None]).argmin(axis=1)
    gnss_err = np.linalg.norm(gxy - txy[k], axis=1)
    dist_m = float(np.sum(np.linalg.norm(np.diff(txy, axis=0), axis=1)))

    print('[5/5] preview sheet: aerial crops with the camera pose | pinhole | panorama')
    renderer = GroundRenderer(world, epoch=1)
    cfg = PairConfig()
    rng = np.random.default_rng(seed)
    rows = []
    from ciper_ros.geo.camera import PinholeCamera
    cam = PinholeCamera.from_hfov(240, 160, 90.0)
    with open_store(out / 'city' / MAP_FILE) as store:
        for _ in range(3):
            xy, yaw = sample_road_pose(world, rng, margin_m=cfg.aerial_side_m)
            pose = CameraPose(xy[0], xy[1], yaw)
            ll = world.plane.latlon_from_xy_m(xy)[0]
            crop = store.crop((ll[0], ll[1]), 50.0, 160)
            aer = draw_pose(crop.image_rgb, np.zeros(2), yaw, crop.m_per_px,
                            fov_rad=np.radians(90.0))
            gap = np.full((160, 4, 3), 255, np.uint8)
            rows.append(np.concatenate([aer, gap, renderer.pinhole(pose, cam), gap,
                                        renderer.panorama(pose, width=640, height=160)], 1))
    cv2.imwrite(str(out / 'preview.png'),
                cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    result = {
        'city_seconds': round(t_city, 2), 'aerial_map_seconds': round(t_aerial, 2),
        'drive_bag_seconds': round(t_drive, 2), 'city_buildings': int(world.n_buildings),
        'drive_distance_m': round(dist_m, 1), 'drive_camera_frames': frames,
        'gnss_fixes': len(fixes), 'gnss_error_m_median': round(float(np.median(gnss_err)), 2),
        'gnss_error_m_p95': round(float(np.percentile(gnss_err, 95)), 2),
        'bag': str(bag), 'preview': str(out / 'preview.png')}
    print(f'city: {world.n_buildings} buildings in {t_city:.1f} s; aerial map '
          f'{t_aerial:.1f} s; drive bag {t_drive:.1f} s ({dist_m:.0f} m, {frames} frames)')
    print(f"GNSS vs ground truth in the bag: median {result['gnss_error_m_median']:.1f} m, "
          f"p95 {result['gnss_error_m_p95']:.1f} m over {len(fixes)} fixes "
          f"(what the localizer will correct)")
    return result
