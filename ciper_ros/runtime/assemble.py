"""Assemble a Localizer from files: checkpoint, tile index, map, backend, calibration.

One place for what ``ciper localize``, ``ciper calibrate``, ``ciper bag eval`` and the node
all do at start-up, with the checks that make a wrong combination fail with one clear line
(an index built with another model, an export of another checkpoint, a missing map).
"""

from __future__ import annotations

from dataclasses import replace
import json
import math
import os
from pathlib import Path

from ciper_ros.runtime.localizer import Localizer, LocalizerConfig
from ciper_ros.util.errors import UserError


def read_calibration(path: str | os.PathLike) -> dict:
    """LocalizerConfig scales from a ``ciper calibrate`` JSON file.

    The file was fitted to one camera (the user's), so its factors apply to every frame:
    they replace the checkpoint's built-in ones for forward cameras too.
    """
    try:
        calib = json.loads(Path(path).read_text())
        scales = {k: float(calib[k]) for k in ('cov_scale', 'yaw_cov_scale')}
    except FileNotFoundError:
        raise FileNotFoundError(f'calibration file {path} does not exist') from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f'{path} is not a ciper calibrate file: {e}') from None
    if not all(v > 0 and v < float('inf') for v in scales.values()):
        raise UserError(f'{path}: covariance scales must be positive and finite, got {scales}')
    return scales | {'forward_cov_scale': scales['cov_scale'],
                     'forward_yaw_cov_scale': scales['yaw_cov_scale']}


CALIBRATION_KEYS = ('cov_scale', 'yaw_cov_scale', 'forward_cov_scale', 'forward_yaw_cov_scale')
# the match head's Platt scaling and acceptance threshold (models with a match head)
MATCH_KEYS = ('match_scale', 'match_bias', 'min_match_prob', 'forward_match_scale',
              'forward_match_bias', 'forward_min_match_prob')


def checkpoint_calibration(blob: dict) -> dict:
    """Read the covariance scales a checkpoint carries, as LocalizerConfig fields.

    ``calibration`` is fitted on validation data by ``ciper model finalize``; {} when the
    checkpoint has none.
    """
    calib = blob.get('calibration') or {}
    out = {k: float(calib[k]) for k in CALIBRATION_KEYS if calib.get(k) is not None}
    if not all(0 < v < float('inf') for v in out.values()):
        raise UserError(f'checkpoint calibration scales must be positive and finite: {out}')
    match = {k: float(calib[k]) for k in MATCH_KEYS if calib.get(k) is not None}
    if not (all(math.isfinite(v) for v in match.values())
            and all(match.get(f'{k}match_scale', 1.0) > 0
                    and 0.0 <= match.get(f'{k}min_match_prob', 0.5) <= 1.0
                    for k in ('', 'forward_'))):
        raise UserError(f'checkpoint match calibration is not usable: {match}')
    return {**out, **match}


def open_localizer(*, index: str | os.PathLike, model: str | os.PathLike | None = None,
                   map_path: str | os.PathLike | None = None, backend: str = 'torch',
                   export_dir: str | os.PathLike | None = None, device: str = 'cpu',
                   calibration: str | os.PathLike | None = None,
                   config: LocalizerConfig | None = None,
                   min_match_prob: float | None = None) -> Localizer:
    """Open everything a Localizer needs; ``model`` None or '' means the shipped default.

    Covariance scales: ``calibration`` (a ``ciper calibrate`` file) when given, else the
    ones the checkpoint carries, else none (1.0). The match head's calibration (Platt
    scale, bias and threshold) always comes from the checkpoint unless ``config`` sets one;
    ``min_match_prob`` then replaces its thresholds (both camera kinds).
    """
    from ciper_ros.maps.open import open_store
    from ciper_ros.model.build import default_model_path, load_checkpoint
    from ciper_ros.runtime.backends import make_backend
    from ciper_ros.runtime.index import file_sha256, TileIndex

    model = Path(model) if model else default_model_path()
    if not model.is_file():
        raise FileNotFoundError(f'checkpoint {model} does not exist')
    # the checkpoint first: a corrupt one is named as such, not as an index built with
    # another model (its hash differs too)
    blob = load_checkpoint(model)
    tiles = TileIndex(index, model_sha256=file_sha256(model))
    store = open_store(map_path or tiles.spec.map_path)
    net = make_backend(backend, model_path=model, export_dir=export_dir or None, device=device)
    config = config or LocalizerConfig()
    own = checkpoint_calibration(blob)
    match = {k: v for k, v in own.items() if k in MATCH_KEYS}
    if tuple(getattr(config, k) for k in MATCH_KEYS) == (1.0, 0.0, 0.5, None, None, None):
        config = replace(config, **match)     # no match calibration of the caller's own
    if min_match_prob is not None:
        if not 0.0 <= min_match_prob <= 1.0:
            raise UserError(f'min_match_prob must be in [0, 1], got {min_match_prob}')
        config = replace(config, min_match_prob=float(min_match_prob),
                         forward_min_match_prob=None)
    if calibration:
        config = replace(config, **read_calibration(calibration))
    elif tuple(getattr(config, k) for k in CALIBRATION_KEYS) == (1.0, 1.0, None, None):
        # the caller set no scales of its own: use the checkpoint's
        config = replace(config, **{k: v for k, v in own.items() if k in CALIBRATION_KEYS})
    return Localizer(model=net, index=tiles, store=store, config=config, device=device)
