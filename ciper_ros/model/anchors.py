"""Geometry-anchored pose hypotheses: polar correlation of aerial and ground features.

For every candidate camera position on a grid inside the aerial crop, aerial features are
sampled along polar rays (A azimuth bins x R radii) and averaged over radius; the ground
image's column features are resampled to the same A bins relative to the heading. Their
circular cross-correlation over the A headings (FFT) scores every (position, heading) cell;
the top K cells become the decoder's anchored queries. The correlation volume is also a
classification output (``anchor_logits``) trained against the true cell.

Coordinates: positions are normalised by the crop half-side, x east, y north, in [-1, 1];
azimuths and headings are REP-103 (counter-clockwise from east).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ciper_ros.model.common import column_sampling


class PolarAnchors(nn.Module):
    def __init__(self, *, dim: int, corr_dim: int = 32, grid_size: int = 9,
                 grid_extent: float = 0.5, n_azimuth: int = 32, radii: tuple[float, ...] =
                 (0.08, 0.16, 0.28, 0.42, 0.6), top_k: int = 32, ground: str = 'panorama',
                 hfov_deg: float = 90.0) -> None:
        super().__init__()
        if ground not in ('panorama', 'pinhole'):
            raise ValueError(f"ground must be 'panorama' or 'pinhole', got {ground!r}")
        self.ground_proj = nn.Linear(dim, corr_dim)
        self.aerial_proj = nn.Linear(dim, corr_dim)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(10.0)))
        self.n_azimuth = n_azimuth
        self.top_k = top_k
        self.ground = ground
        self.hfov = math.radians(hfov_deg)
        g = torch.linspace(-grid_extent, grid_extent, grid_size)
        ys, xs = torch.meshgrid(g, g, indexing='ij')
        self.register_buffer('positions', torch.stack([xs.flatten(), ys.flatten()], -1),
                             persistent=False)                          # (P, 2)
        self.register_buffer('radii', torch.tensor(radii), persistent=False)
        h = torch.arange(n_azimuth)
        self.register_buffer('roll_index', torch.remainder(h[None, :] - h[:, None], n_azimuth),
                             persistent=False)                    # [h, a] = (a - h) mod A
        az = torch.arange(n_azimuth, dtype=torch.float32) * (2 * math.pi / n_azimuth)
        self.register_buffer('azimuths', az, persistent=False)          # (A,)

    @property
    def n_positions(self) -> int:
        return self.positions.shape[0]

    def _ground_columns(self, tokens: torch.Tensor, grid: tuple[int, int]):
        """(B, h*w, D) -> (B, A, C) features at relative azimuths 2 pi a / A, and (A,) mask."""
        B = tokens.shape[0]
        h, w = grid
        cols = self.ground_proj(tokens).view(B, h, w, -1).mean(dim=1)   # (B, w, C)
        i0, i1, f, mask = column_sampling(self.azimuths, w, ground=self.ground,
                                          hfov_rad=self.hfov)
        f = f[None, :, None]
        out = (cols[:, i0] * (1 - f) + cols[:, i1] * f) * mask[None, :, None]
        return nn.functional.normalize(out, dim=-1), mask

    def _polar_aerial(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h*w, D) -> (B, P, A, C): aerial features on polar rays around every position."""
        B = tokens.shape[0]
        h, w = grid
        fmap = self.aerial_proj(tokens).transpose(1, 2).reshape(B, -1, h, w)  # (B, C, h, w)
        ca, sa = torch.cos(self.azimuths), torch.sin(self.azimuths)
        # sample points (P, A, R, 2) in normalised east/north; grid_sample wants (x, -y)
        dx = ca[None, :, None] * self.radii[None, None, :]
        dy = sa[None, :, None] * self.radii[None, None, :]
        px = self.positions[:, 0, None, None] + dx
        py = self.positions[:, 1, None, None] + dy
        pts = torch.stack([px, -py], -1).reshape(1, -1, 1, 2).expand(B, -1, -1, -1)
        s = nn.functional.grid_sample(fmap, pts, mode='bilinear', padding_mode='zeros',
                                      align_corners=False)           # (B, C, P*A*R, 1)
        P, A, R = self.n_positions, self.n_azimuth, len(self.radii)
        s = s.view(B, -1, P, A, R).mean(dim=-1).permute(0, 2, 3, 1)   # (B, P, A, C)
        return nn.functional.normalize(s, dim=-1)

    def forward(self, ground: dict, aerial: dict, *,
                yaw_prior: torch.Tensor | None = None, yaw_prior_range: float = math.pi):
        """Score all (position, heading) cells; return the top-K anchors.

        :returns: dict with ``anchor_logits`` (B, P, A), ``anchors`` (B, K, 4) as
            (x, y, cos, sin), ``anchor_scores`` (B, K), ``anchor_index`` (B, K)
        """
        g, mask = self._ground_columns(ground['tokens'], ground['grid'])   # (B, A, C), (A,)
        a = self._polar_aerial(aerial['tokens'], aerial['grid'])           # (B, P, A, C)
        # circular cross-correlation over headings: S[h] = sum_a a[a] . g[(a - h) mod A], as
        # one matmul against the A rolled copies of g (no FFT: exports to ONNX / TensorRT)
        B, P, A, C = a.shape
        g_rolled = g[:, self.roll_index]                                     # (B, A, A, C)
        corr = a.reshape(B, P, A * C) @ g_rolled.reshape(B, A, A * C).transpose(1, 2)
        corr = corr / mask.sum().clamp(min=1.0)
        logits = corr * self.log_temperature.exp()
        if yaw_prior is not None:
            diff = torch.remainder(self.azimuths[None] - yaw_prior[:, None] + math.pi,
                                   2 * math.pi) - math.pi                   # (B, A)
            allowed = diff.abs() <= yaw_prior_range + math.pi / self.n_azimuth
            allowed = allowed | ~torch.isfinite(yaw_prior)[:, None]   # NaN: no prior, this item
            logits = logits.masked_fill(~allowed[:, None, :], -1e4)
        k = min(self.top_k, P * A)
        scores, index = logits.reshape(B, P * A).topk(k, dim=1)              # (B, K)
        pos = self.positions[index // A]                                     # (B, K, 2)
        yaw = self.azimuths[index % A]
        anchors = torch.cat([pos, torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]], -1)
        return {'anchor_logits': logits, 'anchors': anchors, 'anchor_scores': scores,
                'anchor_index': index}

    def target_cell(self, xy: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        """Index (B,) of the (position, heading) cell nearest to normalised xy and yaw."""
        d = torch.cdist(xy, self.positions)                                  # (B, P)
        p = d.argmin(dim=1)
        h = torch.remainder(torch.round(yaw / (2 * math.pi / self.n_azimuth)),
                            self.n_azimuth).long()
        return p * self.n_azimuth + h
