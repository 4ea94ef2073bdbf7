"""Tiny VIGOR / KITTI / Ford trees with the real file names and formats.

Each tree is built from independent geometry (web-mercator pixels for VIGOR, ENU offsets
for KITTI/Ford) and marks the camera's true position on the aerial image with a coloured
dot, so tests can check that a loader's labels point at it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.geo.mercator import global_px_from_latlon, latlon_from_global_px

CITY_CENTRES = {'NewYork': (40.72, -73.99), 'Seattle': (47.61, -122.33),
                'SanFrancisco': (37.77, -122.42), 'Chicago': (41.88, -87.63)}
PANO_HW = (64, 128)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def colour(i: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(1000 + i)
    return tuple(int(v) for v in rng.integers(60, 255, 3))


def dot(img: np.ndarray, row: float, col: float, rgb, r: int = 4) -> None:
    cv2.circle(img, (int(round(col)), int(round(row))), r, rgb, -1)


def north_marked_panorama(i: int) -> np.ndarray:
    """Make a panorama whose centre columns (facing north) are white; elsewhere dark noise."""
    h, w = PANO_HW
    rng = np.random.default_rng(i)
    img = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    img[:, w // 2 - 1:w // 2 + 1] = 255
    return img


def build_vigor(root: Path, *, layout: str = 'original', corrected: bool = True,
                panos_per_city: int = 3) -> dict:
    """Four cities; each panorama has its own positive tile and 3 semi-positive tiles.

    Returns {pano file name: (city, camera lat, lon, positive tile name, (row, col))}.
    """
    truth = {}
    label_root = root / ('splits__corrected' if corrected else 'splits')
    rng = np.random.default_rng(0)
    for ci, (city, (lat0, lon0)) in enumerate(CITY_CENTRES.items()):
        if layout == 'original':
            pano_dir, sat_dir = root / city / 'panorama', root / city / 'satellite'
        else:
            pano_dir, sat_dir = root / 'ground' / city, root / 'satellite' / city
        sats, lines_train, lines_test = [], [], []
        x0, y0 = global_px_from_latlon(lat0, lon0, 20)
        for k in range(panos_per_city):
            # camera at a random pixel; positive tile centred near it (within 160 px)
            cx, cy = x0 + 2000 * k, y0 + 700 * k
            cam_x, cam_y = cx + rng.uniform(-150, 150), cy + rng.uniform(-150, 150)
            cam_lat, cam_lon = latlon_from_global_px(cam_x, cam_y, 20)
            tiles = []
            for dx, dy in [(0, 0), (320, 0), (0, 320), (320, 320)]:
                sx, sy = cx + dx, cy + dy
                s_lat, s_lon = latlon_from_global_px(sx, sy, 20)
                name = f'satellite_{float(s_lat):.9f}_{float(s_lon):.9f}.png'
                d_row = float(cam_y - sy)        # pano minus sat, rows grow south
                d_col = float(sx - cam_x)        # sat minus pano, columns grow east
                tile = rng.integers(0, 90, (640, 640, 3), dtype=np.uint8)
                row, col = 320 + d_row, 320 - d_col
                if 0 <= row < 640 and 0 <= col < 640:
                    dot(tile, row, col, colour(10 * ci + k), r=12)
                write_rgb(sat_dir / name, tile)
                sats.append(name)
                tiles.append((name, d_row, d_col))
            pano_name = f'p{city[:2]}{k:02d}xyz,{float(cam_lat):.9f},{float(cam_lon):.9f},.jpg'
            write_rgb(pano_dir / pano_name, north_marked_panorama(k))
            line = ' '.join([pano_name] + [f'{n} {dr:.4f} {dc:.4f}' for n, dr, dc in tiles])
            (lines_train if k < panos_per_city - 1 else lines_test).append(line)
            truth[pano_name] = (city, float(cam_lat), float(cam_lon), tiles[0][0],
                                (320 + tiles[0][1], 320 - tiles[0][2]),
                                colour(10 * ci + k))
        d = label_root / city
        d.mkdir(parents=True, exist_ok=True)
        suffix = '__corrected' if corrected else ''
        (d / 'satellite_list.txt').write_text('\n'.join(sats) + '\n')
        (d / f'same_area_balanced_train{suffix}.txt').write_text('\n'.join(lines_train) + '\n')
        (d / f'same_area_balanced_test{suffix}.txt').write_text('\n'.join(lines_test) + '\n')
        (d / f'pano_label_balanced{suffix}.txt').write_text(
            '\n'.join(lines_train + lines_test) + '\n')
    return truth


# ------------------------------------------------------------------------------ KITTI
KITTI_SAT_PX = 800
KITTI_M_PER_PX = 0.1958


def oxts_line(lat: float, lon: float, yaw: float) -> str:
    vals = [lat, lon, 115.0, 0.01, -0.02, yaw] + [0.5] * 17 + [0.1, 0.1, 4, 10, 5, 5, 5]
    assert len(vals) == 30
    return ' '.join(f'{v:.12g}' for v in vals) + '\n'


def build_kitti(root: Path, *, yaws=(0.0, math.pi / 2, -2.5), with_tests: bool = True) -> dict:
    """Two drives; frames with given yaws. Each satmap marks the camera with a dot."""
    from ciper_ros.data.kitti import CAMERA_GPS_OFFSET_M, satmap_m_per_px

    day = '2011_09_26'
    raw = root / 'raw_data' / day
    raw.mkdir(parents=True, exist_ok=True)
    (raw / 'calib_cam_to_cam.txt').write_text(
        'calib_time: 09-Jan-2012 13:57:47\n'
        'P_rect_00: 7.215377e+02 0 6.095593e+02 0 0 7.215377e+02 1.728540e+02 0 0 0 1 0\n'
        'P_rect_02: 7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 '
        '2.163791e-01 0 0 1 2.745884e-03\n')
    frames, truth = [], {}
    for d, drive in enumerate((f'{day}_drive_0001_sync', f'{day}_drive_0002_sync')):
        for k, yaw in enumerate(yaws):
            name = f'{k:010d}.png'
            frame = f'{day}/{drive}/{name}'
            lat, lon = 49.01 + 0.001 * d + 0.0002 * k, 8.40 + 0.001 * k
            (raw / drive / 'oxts' / 'data').mkdir(parents=True, exist_ok=True)
            (raw / drive / 'oxts' / 'data' / name.replace('.png', '.txt')).write_text(
                oxts_line(lat, lon, yaw))
            img = np.random.default_rng(k).integers(0, 255, (94, 310, 3), dtype=np.uint8)
            write_rgb(raw / drive / 'image_02' / 'data' / name, img)
            m = satmap_m_per_px(lat)
            sat = np.random.default_rng(50 + k).integers(0, 90, (KITTI_SAT_PX, KITTI_SAT_PX, 3),
                                                         dtype=np.uint8)
            c = (KITTI_SAT_PX - 1) / 2
            fwd, left = CAMERA_GPS_OFFSET_M
            e = fwd * math.cos(yaw) - left * math.sin(yaw)
            n = fwd * math.sin(yaw) + left * math.cos(yaw)
            dot(sat, c - n / m, c + e / m, (255, 40, 200), r=6)
            write_rgb(root / 'satmap' / frame, sat)
            frames.append(frame)
            truth[frame] = {'lat': lat, 'lon': lon, 'yaw': yaw}
    (root / 'train_files.txt').write_text('\n'.join(frames) + '\n')
    if with_tests:
        shifts = [(0.5, -0.25, 0.3), (-1.0, 0.75, -1.0), (0.1, 0.2, 0.0)]
        lines = [f'{f} {shifts[i % 3][0]} {shifts[i % 3][1]} {shifts[i % 3][2]}'
                 for i, f in enumerate(frames)]
        (root / 'test1_files.txt').write_text('\n'.join(lines[:3]) + '\n')
        (root / 'test2_files.txt').write_text('\n'.join(lines[3:]) + '\n')
    return truth


# ------------------------------------------------------------------------------ Ford
FORD_LOGS = ('2017-10-26/V2/Log1', '2017-08-04/V2/Log3')
FL_OFFSET = (1.3, -0.4)      # camera x forward, y right in the body frame (metres)


def quaternion_from_bearing_deg(bearing_deg: float) -> tuple[float, float, float, float]:
    h = math.radians(bearing_deg) / 2
    return math.cos(h), 0.0, 0.0, math.sin(h)


def build_ford(root: Path, *, bearings=(90.0, 0.0, 225.0)) -> dict:
    from ciper_ros.data.kitti import satmap_m_per_px

    calib = root / 'Calibration-V2' / 'V2'
    calib.mkdir(parents=True, exist_ok=True)
    (calib / 'cameraFrontLeft_body.yaml').write_text(
        'header:\n  frame_id: body\nchild_frame_id: camera_front_left\ntransform:\n'
        f'  translation:\n    x: {FL_OFFSET[0]}\n    y: {FL_OFFSET[1]}\n    z: -1.5\n'
        '  rotation:\n    x: 0.5\n    y: 0.5\n    z: 0.5\n    w: 0.5\n')
    truth = {}
    for li, log in enumerate(FORD_LOGS):
        d = root / log
        fl = d / (log.replace('/', '-') + '-FL')
        train, test = [], []
        for k, bearing in enumerate(bearings):
            s_lat, s_lon = 42.2940 + 0.001 * li, -83.2230 + 0.001 * k
            plane = LocalTangentPlane(s_lat, s_lon)
            body_en = np.array([7.0 * (k - 1), -4.0 + 3.0 * li])
            g_lat, g_lon = plane.latlon_from_xy_m(body_en[None])[0]
            q = quaternion_from_bearing_deg(bearing)
            grd = f'{1500000000000000 + k * 100000}.txt'
            sat_name = f'{s_lat:.7f}_{s_lon:.7f}'
            row = f'{grd} {q[0]:.12f} {q[1]} {q[2]} {q[3]:.12f} {g_lat:.12f} {g_lon:.12f} ' \
                  f'{s_lat:.7f} {s_lon:.7f}'
            train.append(row)
            test.append(row + f' {0.5 - 0.25 * k} {0.25 * k - 0.5} {0.2 * k - 0.4}')
            img = np.random.default_rng(k).integers(0, 255, (86, 166, 3), dtype=np.uint8)
            write_rgb(fl / grd.replace('.txt', '.png'), img)
            m = satmap_m_per_px(s_lat)
            yaw = math.radians(90.0 - bearing)
            f, left = FL_OFFSET[0], -FL_OFFSET[1]
            cam_en = body_en + [f * math.cos(yaw) - left * math.sin(yaw),
                                f * math.sin(yaw) + left * math.cos(yaw)]
            sat = np.random.default_rng(70 + k).integers(0, 90, (800, 800, 3), dtype=np.uint8)
            c = 399.5
            dot(sat, c - cam_en[1] / m, c + cam_en[0] / m, (40, 255, 120), r=6)
            write_rgb(d / 'SatelliteMaps_18' / f'{sat_name}.png', sat)
            truth[(log, k)] = {'yaw': yaw, 'cam_en': cam_en, 's_latlon': (s_lat, s_lon)}
        (d / 'grd_sat_quaternion_latlon.txt').write_text('\n'.join(train) + '\n')
        (d / 'grd_sat_quaternion_latlon_test.txt').write_text('\n'.join(test) + '\n')
    return truth
