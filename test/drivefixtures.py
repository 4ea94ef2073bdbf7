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
