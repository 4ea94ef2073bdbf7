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
    # v2 (fine) parts; the defaults are v1's, so v1 checkpoints rebuild as they were saved
    trunk: str = 'none'                      # 'none': plain ViT; 'mobilenetv2': hybrid ViT
    #                                          on a stride-4 trunk, fine features
    fine_dim: int = 64                       # channels of the stride-4 fine features
    volume_corr_dim: int = 16                # channels the fine volume correlates
    volume_grid: int = 17                    # query_mode 'fine': G x G positions (2 m)
    volume_extent: float = 0.5               # of the half-side: +-16 m in a 64 m crop
    volume_azimuths: int = 64                # heading bins (5.6 deg)
    softargmax_window: int = 2               # (2w + 1)^3 cells around each peak
    descriptor: str = 'tokens'               # 'tokens' (v1: cls / dist heads) or 'gem'

    def __post_init__(self) -> None:
        from ciper_ros.util.errors import UserError

        choices = {'ground': ('panorama', 'pinhole'), 'trunk': ('none', 'mobilenetv2'),
                   'descriptor': ('tokens', 'gem'),
                   'query_mode': ('single', 'free', 'anchored', 'fine')}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f'model {name} must be one of {allowed}, got '
                                f'{getattr(self, name)!r}')
        if self.trunk == 'none' and (self.query_mode == 'fine' or self.descriptor == 'gem'):
            raise UserError("query_mode 'fine' and descriptor 'gem' need fine features "
                            "(trunk: mobilenetv2)")

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        check_keys(cls, d, 'model')
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
