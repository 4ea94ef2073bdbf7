"""A synthetic drive as sensor streams: what a vehicle would record, without any bag format.

:func:`simulate_drive` samples the trajectory, GNSS fixes, wheel odometry, ground truth and
camera poses of one drive in a :class:`~ciper_ros.synth.world.World`; camera images are
rendered on demand (:meth:`DriveRecording.render`). ``ciper_ros.bag.drive`` writes it as a
rosbag2. Times are seconds from the start of the drive; ``T0_NS`` is its epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.synth.drive import drive_trajectory, OdomConfig, simulate_odometry, Trajectory
from ciper_ros.synth.gnss import GnssConfig, GnssTrack, simulate_gnss
from ciper_ros.synth.render import CameraPose, GroundRenderer
from ciper_ros.synth.world import World

# camera optical frame (x right, y down, z forward) in base_link (x forward, y left, z up)
Q_BASE_OPTICAL = (-0.5, 0.5, -0.5, 0.5)
T0_NS = 1_700_000_000 * 1_000_000_000  # drive start: a fixed, realistic epoch


@dataclass(frozen=True)
class DriveConfig:
    duration_s: float = 60.0
    seed: int = 0
    epoch: int = 1
    camera_hz: float = 10.0
    truth_hz: float = 20.0
    image_width: int = 320
    image_height: int = 240
    hfov_deg: float = 90.0
    camera_xyz_m: tuple[float, float, float] = (1.5, 0.0, 1.6)  # in base_link
    raw_images: bool = True
    panorama: bool = False
    panorama_size: tuple[int, int] = (512, 128)   # width, height
    rig: str = ''                 # also record a camera rig (geo.camera.rig_preset), level,
    #                               its cameras of image_width x image_height at camera z
    jpeg_quality: int = 90
    storage: str = 'mcap'
    gnss: GnssConfig = field(default_factory=GnssConfig)
    odom: OdomConfig = field(default_factory=OdomConfig)


@dataclass
class DriveRecording:
    """Every stream of one simulated drive (times in s from the start, map = city ENU).

    ``fixes``: (t_s, lat_deg, lon_deg, alt_m, reported_sigma_m) rows, NaN where the
    receiver had no fix; ``gnss``: the receiver's simulated track with its true errors;
    ``odom``: (t_s, x_m, y_m, yaw_rad, v_mps, yaw_rate_rps) in the odom frame;
    ``truth``: (t_s, x_m, y_m, yaw_rad) of base_link in the map;
    ``camera_t_s`` and ``camera_poses``: one per camera frame (the camera, not base_link).
    """

    config: DriveConfig
    trajectory: Trajectory
    camera: PinholeCamera
    fixes: np.ndarray
    gnss: GnssTrack
    odom: np.ndarray
    truth: np.ndarray
    camera_t_s: np.ndarray
    camera_poses: list[CameraPose]
    renderer: GroundRenderer

    def render(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(pinhole RGB, panorama RGB or None) of camera frame ``i``."""
        pose = self.camera_poses[i]
        rgb = self.renderer.pinhole(pose, self.camera)
        pano = None
        if self.config.panorama:
            pw, ph = self.config.panorama_size
            level = CameraPose(pose.x_m, pose.y_m, pose.yaw_rad, z_m=pose.z_m)
            pano = self.renderer.panorama(level, width=pw, height=ph)
        return rgb, pano

    def rig_cameras(self):
        """Give the rig's cameras (RigCamera), () without one."""
        from ciper_ros.geo.camera import rig_preset

        c = self.config
        return rig_preset(c.rig, width=c.image_width, height=c.image_height) if c.rig else ()

    def render_rig(self, i: int) -> list[np.ndarray]:
        """Every rig camera's RGB image of camera frame ``i`` (level, from its mount)."""
        xy, yaw, _, _ = self.trajectory.at(np.array([self.camera_t_s[i]]))
        base = (float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))
        z = self.config.camera_xyz_m[2]
        return [self.renderer.pinhole(CameraPose(*r.pose_in_map(*base), z_m=z), r.camera)
                for r in self.rig_cameras()]

    @property
    def distance_m(self) -> float:
        xy = self.trajectory.xy_m
        return float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))


def simulate_drive(world: World, cfg: DriveConfig) -> DriveRecording:
    """Sample every stream of a drive in ``world`` (deterministic in the two seeds)."""
    rng = np.random.default_rng([world.config.seed, cfg.seed, 0xD71E])
    half = world.size_px * world.res_m / 2.0
    traj = drive_trajectory(world.roads, rng, duration_s=cfg.duration_s,
                            keep_inside_m=half - 40.0)
    renderer = GroundRenderer(world, epoch=cfg.epoch, seed=cfg.seed)
    camera = PinholeCamera.from_hfov(cfg.image_width, cfg.image_height, cfg.hfov_deg)
    cam_t = np.arange(0.0, traj.duration_s + 1e-9, 1.0 / cfg.camera_hz)
    gnss = simulate_gnss(traj, cfg.gnss, rng)
    o_t, o_xy, o_yaw, o_v, o_rate = simulate_odometry(traj, cfg.odom, rng)
    tr_t = np.arange(0.0, traj.duration_s + 1e-9, 1.0 / cfg.truth_hz)
    # body motion: slow pitch and roll of the camera (suspension, road camber)
    n = len(cam_t)
    pitch = np.convolve(rng.normal(0, math.radians(0.6), n + 10), np.ones(11) / 11 ** 0.5,
                        mode='valid')[:n] * 0.5
    roll = np.convolve(rng.normal(0, math.radians(0.4), n + 10), np.ones(11) / 11 ** 0.5,
                       mode='valid')[:n] * 0.5

    fixes = np.full((len(gnss.t_s), 5), np.nan)
    fixes[:, 0] = gnss.t_s
    for i, (xy, ok) in enumerate(zip(gnss.xy_m, gnss.fix, strict=True)):
        if ok:                  # the altitude draw only for fixes keeps the streams' seeds
            fixes[i, 1:3] = world.plane.latlon_from_xy_m(xy)[0]
            fixes[i, 3] = float(rng.normal(0, 3.0))
            fixes[i, 4] = gnss.reported_sigma_m[i]
    odom = np.column_stack([o_t, o_xy[:, 0], o_xy[:, 1], o_yaw, o_v, o_rate])
    xy_tr, yaw_tr, _, _ = traj.at(tr_t)
    truth = np.column_stack([tr_t, xy_tr, yaw_tr])

    xy_c, yaw_c, _, _ = traj.at(cam_t)
    fwd = np.stack([np.cos(yaw_c), np.sin(yaw_c)], -1)
    left = np.stack([-np.sin(yaw_c), np.cos(yaw_c)], -1)
    cam_xy = xy_c + fwd * cfg.camera_xyz_m[0] + left * cfg.camera_xyz_m[1]
    poses = [CameraPose(cam_xy[i, 0], cam_xy[i, 1], yaw_c[i], z_m=cfg.camera_xyz_m[2],
                        pitch_rad=pitch[i], roll_rad=roll[i]) for i in range(n)]
    return DriveRecording(config=cfg, trajectory=traj, camera=camera, fixes=fixes, gnss=gnss,
                          odom=odom, truth=truth, camera_t_s=cam_t, camera_poses=poses,
                          renderer=renderer)
