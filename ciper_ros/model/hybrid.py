"""Hybrid encoder: a stride-4 convolutional trunk, a ViT at stride 16 on it, a fine neck.

As in the hybrid ViT of Dosovitskiy et al. (2021), the ViT's patches come from a CNN
feature map (here patch 4 on the stride-4 map: stride 16 on the image). The ViT carries the
task tokens (cls / dist for retrieval, pose for the decoder); the neck adds its upsampled
tokens (global context) to the trunk's map (local detail) for the fine features the dense
pose correlation runs on:

* aerial 128 x 128 px at 0.5 m/px -> fine 32 x 32 (2 m cells), tokens 8 x 8;
* panorama 64 x 256 -> fine 16 x 64 (64 columns, 5.6 deg each), tokens 4 x 16.

Ground images may come with unseen azimuths (a forward camera's footprint resampled into
a panorama: the columns outside it are exactly 0). ``col_mask`` (B, W) marks the image
columns that were seen; unseen columns are zeroed before encoding, so whatever they held
cannot change an output, and the mask is returned at the fine columns' resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from ciper_ros.model.trunk import MobileNetTrunk
from ciper_ros.model.vit import ViTEncoder


def seen_columns(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, W) float mask: 1 where a column holds any non-zero pixel."""
    return (image.abs().amax(dim=(1, 2)) > 0).to(image.dtype)


class FineNeck(nn.Module):
    """Trunk map (B, Ct, h, w) + ViT tokens (B, n, D) on a coarser grid -> (B, Cf, h, w)."""

    def __init__(self, *, trunk_channels: int, dim: int, fine_dim: int) -> None:
        super().__init__()
        self.lateral = nn.Conv2d(trunk_channels, fine_dim, 1)
        self.top = nn.Linear(dim, fine_dim)
        self.smooth = nn.Sequential(nn.Conv2d(fine_dim, fine_dim, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(fine_dim), nn.ReLU(inplace=True),
                                    nn.Conv2d(fine_dim, fine_dim, 3, padding=1))

    def forward(self, trunk: torch.Tensor, tokens: torch.Tensor,
                grid: tuple[int, int]) -> torch.Tensor:
        B, _, h, w = trunk.shape
        top = self.top(tokens).transpose(1, 2).reshape(B, -1, *grid)      # (B, Cf, gh, gw)
        top = nn.functional.interpolate(top, size=(h, w), mode='bilinear',
                                        align_corners=False)
        return self.smooth(self.lateral(trunk) + top)


class HybridEncoder(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> the ViT's outputs plus fine features.

    Output dict: ``cls``, ``dist``, ``pose`` (B, D); ``tokens`` (B, h * w, D) and ``grid``
    (h, w) at stride 16; ``fine`` (B, Cf, H / 4, W / 4); ``col_mask`` (B, W / 4) seen fine
    columns (all ones for aerial crops).
    """

    NUM_PREFIX = ViTEncoder.NUM_PREFIX

    def __init__(self, *, img_size: tuple[int, int], dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0, fine_dim: int = 64) -> None:
        super().__init__()
        H, W = img_size
        if H % 16 or W % 16:
            raise ValueError(f'image size {img_size} is not a multiple of 16')
        self.img_size = (H, W)
        self.trunk = MobileNetTrunk()
        s = self.trunk.stride
        self.vit = ViTEncoder(img_size=(H // s, W // s), patch=16 // s, dim=dim, depth=depth,
                              num_heads=num_heads, mlp_ratio=mlp_ratio,
                              in_chans=self.trunk.out_channels, normalize=False)
        self.neck = FineNeck(trunk_channels=self.trunk.out_channels, dim=dim,
                             fine_dim=fine_dim)
        self.grid = self.vit.grid
        self.fine_grid = (H // s, W // s)

    def forward(self, image: torch.Tensor, col_mask: torch.Tensor | None = None) -> dict:
        assert image.shape[1:] == (3, *self.img_size), \
            f'expected (B, 3, {self.img_size[0]}, {self.img_size[1]}), got {tuple(image.shape)}'
        if col_mask is None:
            col_mask = seen_columns(image)
        image = image * col_mask[:, None, None, :].to(image.dtype)
        t = self.trunk(image)                                         # (B, Ct, H/4, W/4)
        enc = self.vit(t)
        enc['fine'] = self.neck(t, enc['tokens'], enc['grid'])         # (B, Cf, H/4, W/4)
        w = self.fine_grid[1]
        # a fine column counts as seen when most of its 4 image columns were
        enc['col_mask'] = (col_mask.reshape(len(col_mask), w, -1).mean(-1) > 0.5).to(
            enc['fine'].dtype)                                        # (B, W/4)
        return enc
