"""A held-out synthetic city, its tile index (shipped model) and a recorded drive: one helper."""

from pathlib import Path

from ciper_ros.bag.drive import write_drive_bag
from ciper_ros.runtime.index import build_index
from ciper_ros.synth.folder import city_paths, write_city_folder
from ciper_ros.synth.recording import DriveConfig
from ciper_ros.synth.world import CityConfig, World

SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'ciper_t_synthetic.pt'


def city_index_drive(root: Path, *, duration_s: float, seed: int = 2) -> Path:
    """City seed 4 (400 m) in root/city, root/index, a 5 Hz panorama drive; return the bag."""
    write_city_folder(root / 'city', CityConfig(seed=4, size_m=400.0), zooms=(19,),
                      progress=False)
    world_path, map_path = city_paths(root / 'city')
    build_index(map_path=map_path, model_path=SHIPPED, out_dir=root / 'index', progress=False)
    return write_drive_bag(World.load(world_path), root / 'drive',
                           DriveConfig(duration_s=duration_s, seed=seed, panorama=True,
                                       camera_hz=5.0, raw_images=False), progress=False)


def bag_frames(bag: Path, *, policy=None, decode: bool = True) -> list[dict]:
    """Camera frames of a bag with the prior the node's rule picks (to drive a live node).

    Each: ``t_ns`` (header stamp), ``frame_id``, ``image`` (RGB, or the message when not
    ``decode``), ``prior`` (a Prior or None), ``fix_age_s``, ``drive_info``
    (``ciper_drive.json``) and ``truth_xy_yaw`` (base_link in the drive's ENU frame).
    """
    from ciper_ros.bag.reader import read_recording, reference_records
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.rosmsg.convert import to_rgb
    from ciper_ros.runtime.gnss import FixPolicy
    from ciper_ros.runtime.localizer import Prior

    rec = read_recording(bag)
    city = rec.drive_info['city']
    datum = (city['lat0_deg'], city['lon0_deg'])         # truth stays in the drive's frame
    refs = reference_records(rec, plane=LocalTangentPlane(*datum),
                             fix_policy=policy or FixPolicy(), datum_latlon_deg=datum)
    out = []
    try:
        for r, (_, _, raw, msgtype, frame_id) in zip(refs, rec.images, strict=True):
            msg = rec.bag.deserialize(raw, msgtype)
            prior = None if r.prior_latlon_deg is None else Prior(
                *r.prior_latlon_deg, sigma_m=r.prior_sigma_m)
            out.append({'t_ns': r.stamp_ns, 'frame_id': frame_id, 'prior': prior,
                        'fix_age_s': r.fix_age_s, 'drive_info': rec.drive_info,
                        'truth_xy_yaw': (r.truth_x_m, r.truth_y_m, r.truth_yaw_rad),
                        'image': to_rgb(msg, msgtype) if decode else msg})
    finally:
        rec.bag.close()
    return out


def small_drive_bags(root: Path) -> tuple[Path, Path]:
    """Write a 1 s drive in a 200 m city as rosbag2 (mcap), and as a ROS 1 bag."""
    from rosbags.convert.converter import convert

    world, _ = write_city_folder(root / 'city', CityConfig(seed=5, size_m=200.0), zooms=(19,),
                                 progress=False)
    ros2 = write_drive_bag(world, root / 'drive', DriveConfig(
        duration_s=1.0, seed=1, camera_hz=5.0, image_width=64, image_height=48),
        progress=False)
    (root / 'ros1').mkdir()
    convert([ros2], root / 'ros1' / 'drive.bag', 'sqlite3', 1, None, 'none', None, None,
            [], [], [], [])
    return ros2, root / 'ros1'
