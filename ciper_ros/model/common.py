"""Building blocks shared by the encoders and the pose decoder."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Linear layers with GELU between them: in -> hidden x (n - 1) -> out."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, *, num_layers: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:],
                                                                   strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = nn.functional.gelu(x)
        return x


def sincos_2d(h: int, w: int, dim: int, *, device=None) -> torch.Tensor:
    """Encode an h x w grid with fixed 2-D sine-cosine features: (h * w, dim).

    Half of the channels encode the row, half the column (dim must be divisible by 4).
    """
    if dim % 4:
        raise ValueError(f'sincos_2d needs dim divisible by 4, got {dim}')
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing='ij')
    return sincos_of(torch.stack([xs.flatten() / max(w, 1), ys.flatten() / max(h, 1)], -1),
                     dim)


def sincos_of(coords: torch.Tensor, dim: int, *, max_period: float = 10.0) -> torch.Tensor:
    """Sine-cosine features of (..., 2) coordinates in roughly [0, 1] or [-1, 1]: (..., dim)."""
    quarter = dim // 4
    freq = torch.exp(torch.arange(quarter, dtype=torch.float32, device=coords.device)
                     * (-math.log(max_period * 100.0) / max(quarter - 1, 1))) * 100.0
    out = []
    for i in range(2):
        a = coords[..., i:i + 1] * freq * (2 * math.pi)
        out += [torch.sin(a), torch.cos(a)]
    return torch.cat(out, dim=-1)


class Attention(nn.Module):
    """Multi-head attention with an optional internal downsampling of the channel width.

    ``downsample_rate`` > 1 projects q, k, v to dim / rate before attending (SAM's
    two-way transformer uses 2 for its cross-attention).
    """

    def __init__(self, dim: int, num_heads: int, *, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = dim // downsample_rate
        if inner % num_heads:
            raise ValueError(f'{inner} channels do not split into {num_heads} heads')
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, Nq, _ = q.shape
        Nk = k.shape[1]
        h = self.num_heads
        q = self.q_proj(q).view(B, Nq, h, -1).transpose(1, 2)   # (B, h, Nq, c)
        k = self.k_proj(k).view(B, Nk, h, -1).transpose(1, 2)   # (B, h, Nk, c)
        v = self.v_proj(v).view(B, Nk, h, -1).transpose(1, 2)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(B, Nq, -1))


def column_sampling(rel_rad: torch.Tensor, width: int, *, ground: str,
                    hfov_rad: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                              torch.Tensor]:
    """Where a ground image's columns face: (i0, i1, frac, visible) for each azimuth.

    ``rel_rad`` (A,): azimuths relative to the heading (counter-clockwise); the feature at
    each is ``cols[i0] * (1 - frac) + cols[i1] * frac`` of the image's ``width`` columns,
    ``visible`` (A,) float: 1 where the camera sees that azimuth. A panorama's column c
    faces heading + pi - 2 pi (c + 0.5) / w (clockwise to the right); a pinhole camera's
    column c sits at x = (c + 0.5) / w * 2 - 1 in tan units, azimuth -atan(x tan(hfov/2)).
    """
    w = width
    if ground == 'panorama':
        c = torch.remainder(math.pi - rel_rad, 2 * math.pi) / (2 * math.pi) * w - 0.5
        c0 = torch.floor(c)
        frac = c - c0
        i0 = torch.remainder(c0.long(), w)
        i1 = torch.remainder(c0.long() + 1, w)
        return i0, i1, frac, torch.ones_like(rel_rad)
    t = math.tan(hfov_rad / 2)
    rel_s = torch.atan2(torch.sin(rel_rad), torch.cos(rel_rad))      # (-pi, pi]
    x = -torch.tan(rel_s) / t                                         # [-1, 1] in FoV
    visible = (rel_s.abs() < hfov_rad / 2) & (x.abs() <= 1)
    c = ((x + 1) / 2 * w - 0.5).clamp(0, w - 1)
    c0 = torch.floor(c).long().clamp(0, w - 1)
    c1 = (c0 + 1).clamp(max=w - 1)
    return c0, c1, c - c0.to(c.dtype), visible.to(rel_rad.dtype)
