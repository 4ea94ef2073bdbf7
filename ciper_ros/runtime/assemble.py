"""Assemble a Localizer from files: checkpoint, tile index, map, backend, calibration.

One place for what ``ciper localize``, ``ciper calibrate``, ``ciper bag eval`` and the node
all do at start-up, with the checks that make a wrong combination fail with one clear line
(an index built with another model, an export of another checkpoint, a missing map).
"""

from __future__ import annotations

from dataclasses import replace
import json
import os
from pathlib import Path

from ciper_ros.runtime.localizer import Localizer, LocalizerConfig


def read_calibration(path: str | os.PathLike) -> dict:
    """``cov_scale`` / ``yaw_cov_scale`` from a ``ciper calibrate`` JSON file."""
    try:
        calib = json.loads(Path(path).read_text())
        scales = {k: float(calib[k]) for k in ('cov_scale', 'yaw_cov_scale')}
    except FileNotFoundError:
        raise FileNotFoundError(f'calibration file {path} does not exist') from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{path} is not a ciper calibrate file: {e}') from None
    if not all(v > 0 and v < float('inf') for v in scales.values()):
        raise ValueError(f'{path}: covariance scales must be positive and finite, got {scales}')
    return scales


def open_localizer(*, index: str | os.PathLike, model: str | os.PathLike | None = None,
                   map_path: str | os.PathLike | None = None, backend: str = 'torch',
                   export_dir: str | os.PathLike | None = None, device: str = 'cpu',
                   calibration: str | os.PathLike | None = None,
                   config: LocalizerConfig | None = None) -> Localizer:
    """Open everything a Localizer needs; ``model`` None or '' means the shipped default."""
    from ciper_ros.maps.open import open_store
    from ciper_ros.model.build import default_model_path
    from ciper_ros.runtime.backends import make_backend
    from ciper_ros.runtime.index import file_sha256, TileIndex

    model = Path(model) if model else default_model_path()
    if not model.is_file():
        raise FileNotFoundError(f'checkpoint {model} does not exist')
    tiles = TileIndex(index, model_sha256=file_sha256(model))
    store = open_store(map_path or tiles.spec.map_path)
    net = make_backend(backend, model_path=model, export_dir=export_dir or None, device=device)
    config = config or LocalizerConfig()
    if calibration:
        config = replace(config, **read_calibration(calibration))
    return Localizer(model=net, index=tiles, store=store, config=config, device=device)
