"""Map imagery stores (MBTiles, XYZ folders) and north-up metric crops."""

from ciper_ros.maps.errors import (
    CorruptTileError,
    MapStoreError,
    NotAMapError,
    OutOfBoundsError,
    TileNotFoundError,
    ZoomNotAvailableError,
)
from ciper_ros.maps.mbtiles import MBTilesStore, MBTilesWriter
from ciper_ros.maps.open import open_store
from ciper_ros.maps.pyramid import RasterSampler, write_pyramid
from ciper_ros.maps.store import MapCrop, MapMetadata, TileStore
from ciper_ros.maps.xyz import XYZFolderStore, XYZWriter

__all__ = [
    'CorruptTileError',
    'MBTilesStore',
    'MBTilesWriter',
    'MapCrop',
    'MapMetadata',
    'MapStoreError',
    'NotAMapError',
    'OutOfBoundsError',
    'RasterSampler',
    'TileNotFoundError',
    'TileStore',
    'XYZFolderStore',
    'XYZWriter',
    'ZoomNotAvailableError',
    'open_store',
    'write_pyramid',
]
