"""``ciper demo`` (``make demo``): the main job end to end on the embedded default data.

1. map store self-check: a web-mercator MBTiles map of a metric test pattern (a grid plus
   markers at known positions), cut into north-up metric crops at many centres and sizes;
   every marker must land within 1 px of where WGS84 geodesy puts it;
2. a synthetic city held out from the shipped model's training, its aerial MBTiles map, a
   90 s drive (360-degree camera, GNSS, odometry, ground truth) and a 30 s calibration drive
   recorded as rosbag2;
3. the city's tile index built with the shipped model, and the covariance calibrated on the
   calibration drive;
4. the real ``localize_node`` as a separate process under ``use_sim_time``, fed by the drive
   replayed over DDS (kept on this machine) with /clock; its poses are recorded and compared
   with ground truth and with the GNSS prior, and the report is written.

Prints where it is and the headline numbers; writes metrics.json and report/report.md.
"""

from __future__ import annotations

import json
import math
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
             marker_radius_m: float = 1.2, seed: int = 0, city_size_m: float = 600.0,
             drive_s: float = 90.0, calibration_s: float = 30.0) -> dict:
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
        print(f'[1/7] reusing {map_path} (same settings)')
    else:
        print(f'[1/7] writing {map_path}: {size_m:g} m square at {center_latlon_deg}, '
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

    print('[2/7] cropping the map at 12 centres x 3 sizes and locating markers')
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
    metrics.update(run_localization_demo(out, seed=seed, city_size_m=city_size_m,
                                         drive_s=drive_s, calibration_s=calibration_s))
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2) + '\n')
    loc = metrics['localization']
    print(f'\noutputs in {out}/: report/report.md (plots, frames.csv, metrics.json, node.log), '
          f'city/, drive/, index/, crops.png, metrics.json')
    print(f"headline: the node localized {loc['localized']} of {loc['frames']} frames; "
          f"position error median {loc.get('position_error_m_median', math.nan):.2f} m, p95 "
          f"{loc.get('position_error_m_p95', math.nan):.2f} m vs the GNSS prior's "
          f"{loc.get('prior_error_m_localized_median', math.nan):.2f} m / "
          f"{loc.get('prior_error_m_localized_p95', math.nan):.2f} m on the same frames; "
          f"heading median "
          f"{loc.get('heading_error_deg_median', math.nan):.2f} deg; latency median "
          f"{loc.get('latency_ms_median', math.nan):.0f} ms, p95 "
          f"{loc.get('latency_ms_p95', math.nan):.0f} ms")
    tr = metrics['tracking']
    for cam in ('panorama', 'forward'):
        parts = [f"{name} {tr[cam][key].get('position_error_m_median', math.nan):.2f} m "
                 f"(p95 {tr[cam][key].get('position_error_m_p95', math.nan):.2f})"
                 for key, name in (('per_frame', 'per frame'), ('tracked', 'tracked'),
                                   ('baseline', 'GNSS + odometry EKF')) if key in tr[cam]]
        print(f"{tr['gnss_profile']} GNSS, {cam} camera: " + '; '.join(parts))
    return metrics


def _tracking_series(loc, bag: Path, topics) -> tuple[dict, dict]:
    """({'tracked', 'baseline'}: records, their info) of one camera of a drive."""
    from ciper_ros.bag.reader import read_recording
    from ciper_ros.experiments.baseline_eval import baseline_records
    from ciper_ros.experiments.tracking_eval import tracked_records

    series, info = {}, {}
    series['tracked'], info['tracked'] = tracked_records(loc, bag, topics=topics)
    rec = read_recording(bag, topics)
    try:
        series['baseline'], info['baseline'] = baseline_records(rec, plane=loc.index.plane)
    finally:
        rec.bag.close()
    return series, info


def _short(m: dict) -> dict:
    keys = ('localized', 'frames', 'position_error_m_median', 'position_error_m_p95',
            'heading_error_deg_median', 'coverage_95')
    return {k: (round(m[k], 3) if isinstance(m.get(k), float) else m.get(k)) for k in keys}


def run_localization_demo(out: Path, *, seed: int = 0, city_size_m: float = 600.0,
                          drive_s: float = 90.0, calibration_s: float = 30.0,
                          rate: float = 1.0, gnss_profile: str = 'urban') -> dict:
    """Run steps 3-7: city, drives, index, calibration, the node, tracking vs the baseline.

    City seed 0 is held out from the shipped model's training cities. The drive's GNSS
    follows ``gnss_profile`` (urban: biased, multipath excursions, under-stated
    covariance); the calibration drive's is white noise (the model's own calibration).
    """
    import shutil

    from ciper_ros.bag.drive import write_drive_bag
    from ciper_ros.bag.offline import calibrate_recording, offline_records
    from ciper_ros.bag.reader import BagTopics
    from ciper_ros.experiments.bag_eval import online_records
    from ciper_ros.experiments.report import write_report
    from ciper_ros.model.build import default_model_path
    from ciper_ros.runtime.assemble import open_localizer
    from ciper_ros.runtime.index import build_index
    from ciper_ros.synth.folder import MAP_FILE, write_city_folder
    from ciper_ros.synth.gnss import gnss_profile as make_gnss
    from ciper_ros.synth.recording import DriveConfig
    from ciper_ros.synth.world import CityConfig

    model = default_model_path()
    print(f'[3/7] synthetic city (seed {seed}, {city_size_m:g} m square, held out from the '
          f"shipped model's training) and its aerial map")
    world, t = write_city_folder(out / 'city', CityConfig(seed=seed, size_m=city_size_m))
    print(f'      {world.n_buildings} buildings; generated in {t["generate_s"]:.1f} s, aerial '
          f'map in {t["aerial_s"]:.1f} s')
    print(f'[4/7] recording a {drive_s:g} s drive (forward and 360 deg cameras at 10 Hz, '
          f'GNSS 5 Hz under the {gnss_profile} profile, odometry, ground truth) and a '
          f'{calibration_s:g} s calibration drive as rosbag2')
    t0 = time.perf_counter()
    drive = write_drive_bag(world, out / 'drive', DriveConfig(
        duration_s=drive_s, seed=seed + 1, panorama=True, raw_images=False,
        gnss=make_gnss(gnss_profile)), overwrite=True)
    calib_bag = write_drive_bag(world, out / 'calibration_drive', DriveConfig(
        duration_s=calibration_s, seed=seed + 101, panorama=True, raw_images=False),
        overwrite=True)
    t_drive = time.perf_counter() - t0
    print(f'[5/7] tile index of the city with the shipped model ({model.name}); covariance '
          'calibration on the calibration drive')
    t0 = time.perf_counter()
    shutil.rmtree(out / 'index', ignore_errors=True)
    index = build_index(map_path=out / 'city' / MAP_FILE, model_path=model,
                        out_dir=out / 'index')
    t_index = time.perf_counter() - t0
    loc = open_localizer(index=index, model=model)
    calib = calibrate_recording(loc, calib_bag)
    calib_path = out / 'calibration.json'
    calib_path.write_text(json.dumps(calib, indent=1) + '\n')
    loc = open_localizer(index=index, model=model, calibration=calib_path)
    print(f'      {len(loc.index)} tiles in {t_index:.1f} s; covariance scale '
          f'{calib["cov_scale"]:.2f} (position), {calib["yaw_cov_scale"]:.2f} (heading)')
    print(f'[6/7] localize_node (a separate process, use_sim_time) on the drive replayed over '
          f'DDS at {rate:g}x with /clock')
    report = out / 'report'
    report.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, run = online_records(drive, index=str(index), model=str(model),
                               node_params={'calibration': str(calib_path.resolve())},
                               rate=rate, log_path=report / 'node.log')
    t_node = time.perf_counter() - t0
    meta = {'bag': str(drive), 'index': str(index), 'model': str(model), 'mode': 'online',
            'rate': rate, 'calibration': str(calib_path), **run}
    print("[7/7] tracking over the drive (the node's pipeline with its drive tracker, "
          'offline) against the GNSS + odometry EKF users run (tuned on the drive), for the '
          '360 deg camera and the forward camera')
    pano = BagTopics(image='/camera_pano/image_raw/compressed', camera_info='')
    series, info = _tracking_series(loc, drive, pano)
    m = write_report(report, rows, meta=meta, store=loc.store, plane=loc.index.plane,
                     zoom=loc.index.spec.zoom, series=series, series_info=info)
    fwd = BagTopics(image='/camera/image_raw/compressed', camera_info='/camera/camera_info')
    fwd_rows = offline_records(loc, drive, topics=fwd)
    fwd_series, fwd_info = _tracking_series(loc, drive, fwd)
    m_fwd = write_report(report / 'forward', fwd_rows,
                         meta={'bag': str(drive), 'mode': 'offline', 'camera': 'forward'},
                         store=loc.store, plane=loc.index.plane, zoom=loc.index.spec.zoom,
                         series=fwd_series, series_info=fwd_info)
    tracking = {'gnss_profile': gnss_profile}
    for cam, mm in (('panorama', m), ('forward', m_fwd)):
        tracking[cam] = {'per_frame': _short(mm), **{k: _short(mm[k]) for k in series
                                                     if k in mm}}
    return {'city_buildings': int(world.n_buildings), 'drive_s': drive_s,
            'drive_bag_seconds': round(t_drive, 1), 'index_tiles': len(loc.index),
            'index_seconds': round(t_index, 1), 'calibration': {
                k: calib[k] for k in ('cov_scale', 'yaw_cov_scale', 'frames')},
            'node_run_seconds': round(t_node, 1), 'node_exit_code': run['node_exit_code'],
            'report': str(report / 'report.md'), 'localization': m, 'tracking': tracking}
