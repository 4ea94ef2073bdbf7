"""Errors of the map imagery stores: one clear message each, never a raw sqlite traceback."""

from ciper_ros.util.errors import CiperError


class MapStoreError(CiperError):
    """Base class of every map store error."""


class NotAMapError(MapStoreError):
    """The file or folder is not a readable map store (not SQLite, no tiles table, ...)."""


class TileNotFoundError(MapStoreError):
    """A tile the request needs is not in the store."""


class ZoomNotAvailableError(MapStoreError):
    """The requested zoom level is not in the store."""


class OutOfBoundsError(MapStoreError):
    """A request leaves the map's bounds."""


class CorruptTileError(MapStoreError):
    """A tile's bytes do not decode as an image."""
