"""Images of nothing: what a camera sends when it shows no place (integrity negatives).

Kinds: ``noise`` (uniform pixel noise: a broken sensor or link), ``smooth`` (low-frequency
noise: a smeared, defocused or covered lens), ``sky`` (a blank sky over a flat, featureless
ground: a camera pointing up, fog, a wall of haze), ``flat`` (one colour: a lens cap,
overexposure). Used to train the match head's "no match" class and to test that the
shipped model rejects such frames.
"""

from __future__ import annotations

import cv2
import numpy as np

NULL_KINDS = ('noise', 'smooth', 'sky', 'flat')


def null_image(kind: str, *, height: int, width: int,
               rng: np.random.Generator) -> np.ndarray:
    """One (height, width, 3) uint8 image of ``kind`` (see :data:`NULL_KINDS`)."""
    if kind == 'noise':
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == 'smooth':
        small = rng.random((max(height // 16, 2), max(width // 16, 2), 3)).astype(np.float32)
        big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        return (np.clip(big, 0, 1) * 255).astype(np.uint8)
    if kind == 'sky':
        horizon = int(height * rng.uniform(0.45, 0.7))
        top = rng.uniform([90, 140, 200], [170, 200, 255])
        bottom = rng.uniform([200, 210, 220], [245, 245, 250])
        t = np.linspace(0.0, 1.0, horizon)[:, None]
        sky = (1 - t) * top + t * bottom                                    # (horizon, 3)
        ground = rng.uniform([60, 60, 60], [140, 140, 130])
        img = np.empty((height, width, 3), np.float32)
        img[:horizon] = sky[:, None, :]
        img[horizon:] = ground
        img += rng.normal(0.0, 2.0, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)
    if kind == 'flat':
        colour = rng.integers(1, 256, 3)        # never all-zero: 0 marks unseen columns
        return np.broadcast_to(colour.astype(np.uint8), (height, width, 3)).copy()
    raise ValueError(f'unknown null image kind {kind!r}; kinds: {NULL_KINDS}')


def null_images(n: int, *, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` images (n, height, width, 3) uint8, cycling through the kinds."""
    out = np.empty((n, height, width, 3), np.uint8)
    start = int(rng.integers(len(NULL_KINDS)))
    for i in range(n):
        out[i] = null_image(NULL_KINDS[(start + i) % len(NULL_KINDS)], height=height,
                            width=width, rng=rng)
    return out
