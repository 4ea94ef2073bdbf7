"""Preview sheets: aerial crops with the camera pose drawn, next to the ground views."""

from __future__ import annotations

from dataclasses import replace
import math
import os

import cv2
import numpy as np

from ciper_ros.util.errors import UserError


def draw_pose(aerial: np.ndarray, offset_xy_m: np.ndarray, yaw_rad: float, m_per_px: float, *,
              fov_rad: float | None = None) -> np.ndarray:
    """Copy of ``aerial`` with the camera position, heading and field of view drawn."""
    img = np.ascontiguousarray(aerial).copy()
    s = img.shape[0]
    u = s / 2 + offset_xy_m[0] / m_per_px
    v = s / 2 - offset_xy_m[1] / m_per_px
    length = s * 0.18
    tip = (u + length * math.cos(yaw_rad), v - length * math.sin(yaw_rad))
    if fov_rad is not None:
        for side in (-1, 1):
            a = yaw_rad + side * fov_rad / 2
            end = (u + length * 1.4 * math.cos(a), v - length * 1.4 * math.sin(a))
            cv2.line(img, (int(u), int(v)), (int(end[0]), int(end[1])), (255, 255, 0), 1,
                     cv2.LINE_AA)
    cv2.arrowedLine(img, (int(u), int(v)), (int(tip[0]), int(tip[1])), (255, 40, 40), 2,
                    cv2.LINE_AA, tipLength=0.3)
    cv2.circle(img, (int(round(u)), int(round(v))), 3, (255, 40, 40), -1, cv2.LINE_AA)
    return img


def city_preview_sheet(city_dir: str | os.PathLike, *, n_rows: int = 4, seed: int = 0,
                       row_px: int = 180, crop_side_m: float = 60.0,
                       hfov_deg: float = 90.0) -> np.ndarray:
    """Rows of aerial crop with the pose drawn | forward pinhole | 360 panorama. RGB uint8.

    Poses are sampled on the roads of the city folder (``ciper synth city``); the pinhole
    camera is 16:9 with ``hfov_deg``, the panorama is centred on the heading.
    """
    from ciper_ros.geo.camera import PinholeCamera
    from ciper_ros.maps import open_store
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.pairs import sample_road_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import World

    if n_rows < 1:
        raise UserError(f'a preview sheet needs at least one row, got {n_rows}')
    world_path, map_path = city_paths(city_dir)
    world = World.load(world_path)
    renderer = GroundRenderer(world, epoch=1)
    cam = PinholeCamera.from_hfov(row_px * 16 // 9, row_px, hfov_deg)
    rng = np.random.default_rng(seed)
    gap = np.full((row_px, 6, 3), 255, np.uint8)
    rows = []
    with open_store(map_path) as store:
        for _ in range(n_rows):
            xy, yaw = sample_road_pose(world, rng, margin_m=crop_side_m)
            pose = CameraPose(xy[0], xy[1], yaw)
            lat, lon = world.plane.latlon_from_xy_m(xy)[0]
            crop = store.crop((lat, lon), crop_side_m, row_px)
            aerial = draw_pose(crop.image_rgb, np.zeros(2), yaw, crop.m_per_px,
                               fov_rad=math.radians(hfov_deg))
            pinhole = renderer.pinhole(pose, cam)
            pano = renderer.panorama(pose, width=4 * row_px, height=row_px)
            rows.append(np.concatenate([aerial, gap, pinhole, gap, pano], axis=1))
    sep = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (sep, row)][1:], axis=0)


def appearance_sheet(*, seed: int = 3, size_m: float = 200.0, xy_m: tuple[float, float] = (24.0,
                     56.3), yaw_rad: float = 1.6, row_px: int = 100, crop_side_m: float = 60.0,
                     presets: tuple[str, ...] | None = None) -> np.ndarray:
    """One spot of one city under every appearance preset: a row of aerial | panorama each.

    Same seed, so the same geometry; per row the preset's name, an aerial crop of
    ``crop_side_m`` around ``xy_m`` rendered as its provider would (sun, colours, blur,
    resolution; no JPEG) with the pose drawn, and the 360 degree panorama centred on
    ``yaw_rad``. RGB uint8, about ``len(presets) * (row_px + 6)`` high.
    """
    from ciper_ros.synth.appearance import (
        aerial_capture,
        AerialSampler,
        get_preset,
        HELD_OUT_PRESET,
        PRESETS,
    )
    from ciper_ros.synth.city import generate_city
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import CityConfig

    names = tuple(PRESETS) if presets is None else tuple(presets)
    if not names:
        raise UserError('an appearance sheet needs at least one preset')
    for n in names:
        get_preset(n)
    base = generate_city(CityConfig(seed=seed, size_m=size_m))
    m_per_px = crop_side_m / row_px
    off = (np.arange(row_px) + 0.5) * m_per_px - crop_side_m / 2
    east, north = np.meshgrid(xy_m[0] + off, xy_m[1] - off)
    pose = CameraPose(float(xy_m[0]), float(xy_m[1]), yaw_rad)
    label_w = 104
    gap = np.full((row_px, 6, 3), 255, np.uint8)
    rows = []
    for n in names:
        # geometry does not depend on the preset: reuse the tables, swap the config
        world = replace(base, config=CityConfig(seed=seed, size_m=size_m, appearance=n),
                        _car_layers={})
        aerial = AerialSampler(world, aerial_capture(world))(east, north, m_per_px)
        aerial = draw_pose(aerial, np.zeros(2), yaw_rad, m_per_px)
        pano = GroundRenderer(world, epoch=1).panorama(pose, width=4 * row_px, height=row_px)
        label = np.full((row_px, label_w, 3), 255, np.uint8)
        lines = [n, '(held out)'] if n == HELD_OUT_PRESET else [n]
        for i, text in enumerate(lines):
            cv2.putText(label, text, (4, row_px // 2 - 4 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX,
                        0.42, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, aerial, gap, pano], axis=1))
    sep = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (sep, row)][1:], axis=0)


def write_appearance_sheet(path: str | os.PathLike, **kwargs) -> os.PathLike:
    """Write :func:`appearance_sheet` as a PNG (docs/appearance_presets.png); returns the path."""
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    img = appearance_sheet(**kwargs)
    if not cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise UserError(f'could not write {p}')
    return p


def write_gnss_profile_plot(path: str | os.PathLike, *, duration_s: float = 600.0,
                            seed: int = 0) -> os.PathLike:
    """Plot each GNSS profile's horizontal error and reported sigma over one drive's time.

    docs/gnss_profiles.png is ``write_gnss_profile_plot('docs/gnss_profiles.png')``.
    """
    from pathlib import Path

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ciper_ros.synth.drive import Trajectory
    from ciper_ros.synth.gnss import GNSS_PROFILES, simulate_gnss

    t = np.arange(0.0, duration_s + 1.0, 0.05)
    traj = Trajectory(t_s=t, xy_m=np.stack([10.0 * t, np.zeros_like(t)], -1),
                      yaw_rad=np.zeros_like(t), speed_mps=np.full_like(t, 10.0))
    fig, axes = plt.subplots(len(GNSS_PROFILES), 1, figsize=(9, 2.0 * len(GNSS_PROFILES)),
                             sharex=True)
    for ax, (name, cfg) in zip(axes, GNSS_PROFILES.items(), strict=True):
        tr = simulate_gnss(traj, cfg, np.random.default_rng(seed))
        err = np.linalg.norm(tr.error_m, axis=1)
        err_shown = np.where(tr.fix, err, np.nan)
        ax.plot(tr.t_s, err_shown, lw=0.8, color='tab:red', label='true error')
        ax.plot(tr.t_s, np.where(tr.fix, 2.45 * tr.reported_sigma_m, np.nan), lw=0.8,
                color='tab:blue', label='reported 95 % radius')
        lost = ~tr.fix
        if lost.any():
            ax.fill_between(tr.t_s, 0, 1, where=lost, color='0.8', step='mid',
                            transform=ax.get_xaxis_transform(), label='no fix')
        ax.set_ylabel('m')
        ax.set_title(f'{name}: median {np.median(err[tr.fix]):.1f} m, '
                     f'p95 {np.percentile(err[tr.fix], 95):.1f} m', fontsize=9, loc='left')
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc='upper right', ncol=3)
    axes[-1].set_xlabel('time (s)')
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
