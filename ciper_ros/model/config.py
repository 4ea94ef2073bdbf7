"""The model's configuration: one typed, frozen record, saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ciper_ros.util.config import check_keys


@dataclass(frozen=True)
class ModelConfig:
    name: str = 'ciper_t'
    ground: str = 'panorama'                 # 'panorama' or 'pinhole'
    ground_size: tuple[int, int] = (64, 256)  # H, W
    aerial_size: tuple[int, int] = (128, 128)
    hfov_deg: float = 90.0                   # pinhole ground only
    patch: int = 16
    dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    desc_dim: int = 128
    share_encoders: bool = False
    decoder_depth: int = 2
    decoder_heads: int = 4
    decoder_mlp: int = 512
    decoder_downsample: int = 2
    query_mode: str = 'anchored'             # 'single', 'free', 'anchored'
    num_queries: int = 32
    anchor_grid: int = 9
    anchor_extent: float = 0.5
    anchor_azimuths: int = 32
    anchor_corr_dim: int = 32

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        check_keys(cls, d, 'model')
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
