"""ViT encoder with task tokens (DeiT layout: cls and dist tokens, plus a pose token).

Key names follow timm's DeiT (``patch_embed.proj``, ``cls_token``, ``dist_token``,
``pos_embed``, ``blocks.i.attn.qkv`` ...) so an ImageNet DeiT checkpoint loads by name.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, *, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)                                  # (B, 3, H, W) -> (B, C, h, w)
        grid = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), grid         # (B, C, h, w) -> (B, hw, C)


class ViTAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)              # each (B, h, N, c)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, *, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, hidden))
        self.mlp.add_module('act', nn.GELU())
        self.mlp.add_module('fc2', nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """Image -> (prefix tokens: cls, dist, pose; patch tokens on an h x w grid).

    Input (B, 3, H, W) float in [0, 1] (normalised inside with ImageNet statistics).
    Output dict: ``cls``, ``dist``, ``pose`` (B, D); ``tokens`` (B, h * w, D); ``grid`` (h, w).
    """

    NUM_PREFIX = 3

    def __init__(self, *, img_size: tuple[int, int], patch: int, dim: int, depth: int,
                 num_heads: int, mlp_ratio: float = 4.0, in_chans: int = 3,
                 normalize: bool = True) -> None:
        """Build the encoder.

        ``in_chans`` / ``normalize``: a hybrid ViT (a convolutional trunk in front) passes
        the trunk's channels and its feature-map size as ``img_size``, un-normalised.
        """
        super().__init__()
        H, W = img_size
        if H % patch or W % patch:
            raise ValueError(f'image size {img_size} is not a multiple of the patch {patch}')
        self.img_size = (H, W)
        self.in_chans = in_chans
        self.normalize = normalize
        self.grid = (H // patch, W // patch)
        self.patch_embed = PatchEmbed(patch=patch, in_chans=in_chans, dim=dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pose_token = nn.Parameter(torch.zeros(1, 1, dim))
        n = self.grid[0] * self.grid[1] + self.NUM_PREFIX
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
        self.blocks = nn.ModuleList(Block(dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                             persistent=False)
        for p in (self.cls_token, self.dist_token, self.pose_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(_init_weights)

    def share_weights_with(self, other: ViTEncoder) -> ViTEncoder:
        """Use ``other``'s patch embedding, tokens, blocks and norm (one set of weights).

        Only the position embedding stays this encoder's own: it covers this input's token
        grid, so one encoder can serve a panorama and a square aerial crop.
        """
        if self.pos_embed.shape[-1] != other.pos_embed.shape[-1] or \
                len(self.blocks) != len(other.blocks):
            raise ValueError('shared encoders need the same width and depth')
        self.patch_embed, self.blocks, self.norm = other.patch_embed, other.blocks, other.norm
        self.cls_token, self.dist_token = other.cls_token, other.dist_token
        self.pose_token = other.pose_token
        return self

    def forward(self, image: torch.Tensor) -> dict:
        assert image.shape[1:] == (self.in_chans, *self.img_size), \
            f'expected (B, {self.in_chans}, {self.img_size[0]}, {self.img_size[1]}), got ' \
            f'{tuple(image.shape)}'
        if self.normalize:
            image = (image - self.mean) / self.std
        x, grid = self.patch_embed(image)                               # (B, hw, D)
        B = x.shape[0]
        prefix = torch.cat([self.cls_token, self.dist_token, self.pose_token], 1).expand(B, -1,
                                                                                          -1)
        x = torch.cat([prefix, x], dim=1) + self.pos_embed              # (B, 3 + hw, D)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return {'cls': x[:, 0], 'dist': x[:, 1], 'pose': x[:, 2], 'tokens': x[:, 3:],
                'grid': grid}


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def load_deit_weights(encoder: ViTEncoder, path: str) -> dict:
    """Initialise from a local timm DeiT checkpoint (never downloads).

    Position embeddings are resized bilinearly to this encoder's grid; the pose token and its
    position embedding start from the cls token's. Returns {'loaded': [...], 'skipped': [...]}.
    """
    state = torch.load(path, map_location='cpu', weights_only=True)
    state = state.get('model', state)
    own = encoder.state_dict()
    loaded, skipped = [], []
    n_prefix = 2 if 'dist_token' in state else 1     # DeiT distilled, or plain ViT / DeiT
    for key, value in state.items():
        if key == 'pos_embed':
            value = _resize_pos_embed(value, n_prefix_src=n_prefix, grid=encoder.grid)
        if key in own and own[key].shape == value.shape:
            own[key] = value
            loaded.append(key)
        else:
            skipped.append(key)
    if 'cls_token' in state and own['pose_token'].shape == state['cls_token'].shape:
        own['pose_token'] = state['cls_token'].clone()
        if 'dist_token' not in state:
            own['dist_token'] = state['cls_token'].clone()
    encoder.load_state_dict(own)
    return {'loaded': loaded, 'skipped': skipped}


def _resize_pos_embed(pe: torch.Tensor, *, n_prefix_src: int,
                      grid: tuple[int, int]) -> torch.Tensor:
    """(1, n_prefix_src + s*s, D) -> (1, 3 + h*w, D): cls, dist (or cls's), pose = cls's."""
    cls, patches = pe[:, :1], pe[:, n_prefix_src:]
    prefix = pe[:, :2] if n_prefix_src == 2 else torch.cat([cls, cls], dim=1)
    side = int(round(patches.shape[1] ** 0.5))
    grid_pe = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)   # (1, D, s, s)
    grid_pe = nn.functional.interpolate(grid_pe, size=grid, mode='bilinear',
                                        align_corners=False)
    grid_pe = grid_pe.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    return torch.cat([prefix, prefix[:, :1], grid_pe], dim=1)
