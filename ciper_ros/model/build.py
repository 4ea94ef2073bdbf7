"""Model registry: builders own every number. Checkpoints carry their config.

``MODELS = {'ciper_s': ..., 'ciper_t': ..., 'ciper_t2': ...}``; ``build_model(name, **overrides)``;
``save_checkpoint`` / ``load_model`` (``torch.load(weights_only=True)``, atomic writes).
"""

from __future__ import annotations

import os
from pathlib import Path
import pickle
import sys
import zipfile

import torch

from ciper_ros.model.anchors import PolarAnchors
from ciper_ros.model.ciper import CIPER, DescriptorHead, GeMDescriptor
from ciper_ros.model.config import ModelConfig
from ciper_ros.model.fine_decoder import FinePoseDecoder
from ciper_ros.model.hybrid import HybridEncoder
from ciper_ros.model.pose_decoder import PoseDecoder
from ciper_ros.model.two_way import TwoWayTransformer
from ciper_ros.model.vit import ViTEncoder
from ciper_ros.model.volume import FinePolarVolume
from ciper_ros.util.atomic import atomic_path
from ciper_ros.util.errors import CorruptFileError, UserError

FORMAT_VERSION = 1


PRESETS = {
    # the first CPU / embedded model (v1): ViT at stride 16, polar anchors on a 4 m grid
    'ciper_t': ModelConfig(),
    # v2: hybrid encoders with fine (stride 4) features, the pose read from a fine score
    # volume (2 m, 5.6 deg cells, soft-argmax refined), GeM descriptors, a match head
    'ciper_t2': ModelConfig(name='ciper_t2', trunk='mobilenetv2', query_mode='fine',
                            descriptor='gem'),
    # the paper's size (DeiT-Small encoders, SAM-style decoder), for GPU training
    'ciper_s': ModelConfig(name='ciper_s', ground_size=(256, 1024), aerial_size=(512, 512),
                           dim=384, depth=12, num_heads=6, desc_dim=1000, decoder_depth=2,
                           decoder_heads=8, decoder_mlp=2048, decoder_downsample=2,
                           num_queries=64, anchor_grid=17, anchor_azimuths=64,
                           anchor_corr_dim=64),
}


def build_from_config(cfg: ModelConfig) -> CIPER:
    if cfg.trunk != 'none':
        return _build_fine(cfg)
    ground = ViTEncoder(img_size=cfg.ground_size, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth,
                        num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio)
    if cfg.share_encoders and cfg.ground_size == cfg.aerial_size:
        aerial = ground
    elif cfg.share_encoders:      # one set of weights, a position embedding per token grid
        aerial = ViTEncoder(img_size=cfg.aerial_size, patch=cfg.patch, dim=cfg.dim,
                            depth=cfg.depth, num_heads=cfg.num_heads,
                            mlp_ratio=cfg.mlp_ratio).share_weights_with(ground)
    else:
        aerial = ViTEncoder(img_size=cfg.aerial_size, patch=cfg.patch, dim=cfg.dim,
                            depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio)
    anchors = PolarAnchors(dim=cfg.dim, corr_dim=cfg.anchor_corr_dim, grid_size=cfg.anchor_grid,
                           grid_extent=cfg.anchor_extent, n_azimuth=cfg.anchor_azimuths,
                           top_k=cfg.num_queries, ground=cfg.ground,
                           hfov_deg=cfg.hfov_deg) if cfg.query_mode == 'anchored' else None
    decoder = PoseDecoder(
        transformer=TwoWayTransformer(depth=cfg.decoder_depth, dim=cfg.dim,
                                      num_heads=cfg.decoder_heads, mlp_dim=cfg.decoder_mlp,
                                      downsample_rate=cfg.decoder_downsample),
        num_queries=cfg.num_queries, query_mode=cfg.query_mode, anchors=anchors)
    return CIPER(ground_encoder=ground, aerial_encoder=aerial,
                 ground_desc=DescriptorHead(cfg.dim, cfg.desc_dim),
                 aerial_desc=DescriptorHead(cfg.dim, cfg.desc_dim), pose_decoder=decoder,
                 config=cfg)


def _build_fine(cfg: ModelConfig) -> CIPER:
    """CIPER with hybrid encoders (stride-4 trunk, ViT at 16) and fine features."""
    if cfg.share_encoders:
        raise UserError('shared encoders are not available with a convolutional trunk')
    kw = {'dim': cfg.dim, 'depth': cfg.depth, 'num_heads': cfg.num_heads,
          'mlp_ratio': cfg.mlp_ratio, 'fine_dim': cfg.fine_dim}
    ground = HybridEncoder(img_size=cfg.ground_size, **kw)
    aerial = HybridEncoder(img_size=cfg.aerial_size, **kw)
    transformer = TwoWayTransformer(depth=cfg.decoder_depth, dim=cfg.dim,
                                    num_heads=cfg.decoder_heads, mlp_dim=cfg.decoder_mlp,
                                    downsample_rate=cfg.decoder_downsample)
    if cfg.query_mode == 'fine':
        volume = FinePolarVolume(fine_dim=cfg.fine_dim, corr_dim=cfg.volume_corr_dim,
                                 grid_size=cfg.volume_grid, grid_extent=cfg.volume_extent,
                                 n_azimuth=cfg.volume_azimuths, ground=cfg.ground,
                                 hfov_deg=cfg.hfov_deg, ground_rows=cfg.ground_size[0] // 4,
                                 window=cfg.softargmax_window)
        decoder = FinePoseDecoder(volume=volume, transformer=transformer,
                                  top_k=cfg.num_queries)
    else:
        raise UserError(f"a convolutional trunk takes query_mode 'fine', got "
                        f'{cfg.query_mode!r}')
    if cfg.descriptor == 'gem':
        descs = [GeMDescriptor(fine_dim=cfg.fine_dim, dim=cfg.dim, out_dim=cfg.desc_dim)
                 for _ in range(2)]
    else:
        descs = [DescriptorHead(cfg.dim, cfg.desc_dim) for _ in range(2)]
    return CIPER(ground_encoder=ground, aerial_encoder=aerial, ground_desc=descs[0],
                 aerial_desc=descs[1], pose_decoder=decoder, config=cfg)


def build_ciper_t(**overrides) -> CIPER:
    return build_from_config(ModelConfig.from_dict({**PRESETS['ciper_t'].to_dict(),
                                                    **overrides}))


def build_ciper_s(**overrides) -> CIPER:
    return build_from_config(ModelConfig.from_dict({**PRESETS['ciper_s'].to_dict(),
                                                    **overrides}))


def build_ciper_t2(**overrides) -> CIPER:
    return build_from_config(ModelConfig.from_dict({**PRESETS['ciper_t2'].to_dict(),
                                                    **overrides}))


MODELS = {'ciper_t': build_ciper_t, 'ciper_t2': build_ciper_t2, 'ciper_s': build_ciper_s}


def build_model(name: str, **overrides) -> CIPER:
    if name not in MODELS:
        raise UserError(f'unknown model {name!r}; available: {sorted(MODELS)}')
    return MODELS[name](**overrides)


def init_from_deit(model: CIPER, path: str | os.PathLike) -> dict:
    """Initialise both encoders from a local ImageNet DeiT file (timm key names).

    Nothing is downloaded: ``path`` is a file the user already has (e.g. timm's
    ``deit_small_distilled_patch16_224`` weights). Raises ValueError when the file does not
    fit this model's encoder (different width or depth), rather than loading a few tensors.
    """
    from ciper_ros.model.vit import load_deit_weights

    p = Path(path)
    if not p.is_file():
        raise UserError(f'DeiT weights not found: {p} (nothing is downloaded)')
    encoders = [model.ground_encoder]
    if model.aerial_encoder is not model.ground_encoder:
        encoders.append(model.aerial_encoder)
    report = {}
    for name, enc in zip(('ground', 'aerial')[:len(encoders)], encoders, strict=True):
        try:
            r = load_deit_weights(enc, str(p))
        except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
            raise UserError(f'{p} is not a readable PyTorch weights file: {e}') from None
        n_own = len(enc.state_dict())
        if len(r['loaded']) < 0.8 * n_own:
            raise UserError(f'{p} does not fit the {name} encoder: {len(r["loaded"])} of '
                             f'{n_own} tensors match by name and shape (width '
                             f'{model.config.dim}, depth {model.config.depth}, patch '
                             f'{model.config.patch}); a DeiT-Small file fits ciper_s')
        report[name] = r
    return report


def save_checkpoint(path: str | os.PathLike, model: CIPER, *, step: int = 0,
                    metrics: dict | None = None, extra: dict | None = None,
                    half: bool = False) -> Path:
    """Write {'model', 'config', 'step', 'metrics', 'format_version', ...} atomically.

    ``half`` stores floating-point weights as float16 (shipping size; ``load_model``
    restores float32).
    """
    path = Path(path)
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    blob = {'model': state, 'config': model.config.to_dict(), 'step': int(step),
            'metrics': dict(metrics or {}), 'format_version': FORMAT_VERSION, **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint; a truncated or foreign file is a :class:`CorruptFileError`.

    Every caller (training resume, index build, backends, the runtime) reads checkpoints
    here, so a damaged file is reported as a corrupt checkpoint naming it, whatever the
    caller was about to do with it.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f'checkpoint {path} is a directory, not a checkpoint file')
    try:
        # torch.load checks no CRCs: bytes damaged inside a tensor load as other weights
        # (measured: 64 zeroed bytes mid-file loaded without error), so test the archive
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
        if bad_member is not None:
            raise CorruptFileError(f'corrupt checkpoint {path}: not a readable ciper '
                                   f'checkpoint ({bad_member} fails its CRC check)')
        blob = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint {path} does not exist') from None
    except PermissionError as e:
        raise UserError(f'cannot read checkpoint {path}: {e}') from None
    except CorruptFileError:
        raise
    except Exception as e:  # zipfile and torch raise many types for corrupt files
        reason = (str(e).splitlines() or [''])[0][:160]
        raise CorruptFileError(
            f'corrupt checkpoint {path} ({path.stat().st_size} bytes): not a readable ciper '
            f'checkpoint (truncated, damaged or not a PyTorch file: {type(e).__name__}: '
            f'{reason})') from None
    if not isinstance(blob, dict) or 'model' not in blob or 'config' not in blob:
        raise CorruptFileError(f'{path} is not a ciper checkpoint (no model/config)')
    if blob.get('format_version') != FORMAT_VERSION:
        raise UserError(f'{path} has checkpoint format {blob.get("format_version")}; this '
                        f'version reads {FORMAT_VERSION}')
    return blob


def load_model(path: str | os.PathLike) -> CIPER:
    """Rebuild a model from a checkpoint's own config and load its weights."""
    return model_from_checkpoint(load_checkpoint(path))


def model_from_checkpoint(blob: dict) -> CIPER:
    """Rebuild the model of a loaded checkpoint (float16 weights come back as float32)."""
    model = build_from_config(ModelConfig.from_dict(blob['config']))
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob['model'].items()}
    model.load_state_dict(state)
    return model.eval()


DEFAULT_MODEL_FILE = 'ciper_t_synthetic.pt'


def default_model_path() -> Path:
    """Find the shipped default checkpoint (installed share/ciper_ros/models, or the checkout).

    Looked up through the ament index (a ROS install), then under the Python prefix (a
    pip install into a venv), then next to the package sources (a checkout on PYTHONPATH).
    """
    tried = []
    try:
        from ament_index_python.packages import get_package_share_directory

        tried.append(Path(get_package_share_directory('ciper_ros')) / 'models')
    except Exception:            # no ament index in the environment: look by prefix
        pass
    tried.append(Path(sys.prefix) / 'share' / 'ciper_ros' / 'models')     # pip / venv install
    tried.append(Path(__file__).resolve().parents[2] / 'models')          # a source checkout
    for folder in tried:
        if (folder / DEFAULT_MODEL_FILE).is_file():
            return folder / DEFAULT_MODEL_FILE
    raise FileNotFoundError(f'the default model {DEFAULT_MODEL_FILE} is not installed (looked in '
                            f'{", ".join(map(str, tried))}); pass a checkpoint explicitly')
