"""Tile image encoding and decoding (PNG, JPEG, WebP) through OpenCV; RGB uint8 in and out."""

from __future__ import annotations

import cv2
import numpy as np

from ciper_ros.maps.errors import CorruptTileError
from ciper_ros.util.errors import UserError

FORMATS = ('png', 'jpg', 'webp')
_FORMAT_ALIASES = {'png': 'png', 'jpg': 'jpg', 'jpeg': 'jpg', 'webp': 'webp'}
_EXTENSIONS = {'png': '.png', 'jpg': '.jpg', 'webp': '.webp'}


def normalize_format(fmt: str) -> str:
    """'PNG', 'jpeg', ... -> one of FORMATS."""
    key = str(fmt).strip().lower()
    if key not in _FORMAT_ALIASES:
        raise UserError(f'unsupported tile format {fmt!r}; expected one of {FORMATS}')
    return _FORMAT_ALIASES[key]


def extension(fmt: str) -> str:
    return _EXTENSIONS[normalize_format(fmt)]


def sniff_format(data: bytes) -> str | None:
    """Format from magic bytes, or None when unknown."""
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return 'png'
    if data[:3] == b'\xff\xd8\xff':
        return 'jpg'
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'webp'
    return None


def decode_rgb(data: bytes, *, what: str = 'tile') -> np.ndarray:
    """Decode image bytes to (H, W, 3) uint8 RGB; grey and alpha images are converted."""
    if not data:
        raise CorruptTileError(f'{what} is empty')
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        kind = sniff_format(data) or 'unknown'
        raise CorruptTileError(f'{what} does not decode as an image ({len(data)} bytes, '
                               f'format {kind})')
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_rgb(image_rgb: np.ndarray, fmt: str, *, jpeg_quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> encoded bytes in a tile format."""
    fmt = normalize_format(fmt)
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise UserError(f'expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}')
    params: list[int] = []
    if fmt == 'jpg':
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif fmt == 'webp':
        params = [cv2.IMWRITE_WEBP_QUALITY, int(jpeg_quality)]
    ok, buf = cv2.imencode(_EXTENSIONS[fmt], cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise UserError(f'OpenCV failed to encode a {img.shape} image as {fmt}')
    return buf.tobytes()
