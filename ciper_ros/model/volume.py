"""Fine pose score volume: polar correlation of fine features, peaks and local soft-argmax.

For every candidate camera position on a G x G grid inside the aerial crop (2 m apart by
default) the aerial fine features are sampled along A polar rays at R radii and combined
over radius with learned per-channel weights; the ground's fine columns are resampled to
the same A azimuths relative to the heading. Their circular cross-correlation scores every
(position, heading) cell: the volume (B, P, A), P = G * G. Unseen azimuths (the columns a
forward camera does not cover) are masked out of the correlation.

Bins: aerial and relative azimuths sit at 2 pi (a + 0.5) / A, headings at 2 pi h / A, so
with A equal to the panorama's fine columns every column is one azimuth bin exactly.

The pose read from the volume: local maxima (3 x 3 x 3, circular in heading), the top K of
them, and a soft-argmax in a (2w + 1)^3 window around each, differentiable, so an L1 loss on
the refined pose trains the volume's shape near its peak.

Coordinates: positions normalised by the crop half-side, x east, y north; azimuths and
headings REP-103 (counter-clockwise from east).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ciper_ros.model.common import column_sampling

NEG = -1e4          # logit of a disallowed cell (finite: ONNX / fp16 safe)


class FinePolarVolume(nn.Module):
    def __init__(self, *, fine_dim: int, corr_dim: int = 16, grid_size: int = 17,
                 grid_extent: float = 0.5, n_azimuth: int = 64,
                 radii: tuple[float, ...] = (0.05, 0.13, 0.24, 0.38, 0.56),
                 ground: str = 'panorama', hfov_deg: float = 90.0, ground_rows: int = 16,
                 window: int = 2) -> None:
        super().__init__()
        if ground not in ('panorama', 'pinhole'):
            raise ValueError(f"ground must be 'panorama' or 'pinhole', got {ground!r}")
        self.ground_proj = nn.Conv2d(fine_dim, corr_dim, 1)
        self.aerial_proj = nn.Conv2d(fine_dim, corr_dim, 1)
        self.row_logits = nn.Parameter(torch.zeros(ground_rows))        # height pooling
        self.radius_logits = nn.Parameter(torch.zeros(len(radii), corr_dim))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(10.0)))
        self.log_window_scale = nn.Parameter(torch.tensor(0.0))        # soft-argmax sharpness
        self.n_azimuth = n_azimuth
        self.grid_size = grid_size
        self.ground = ground
        self.hfov = math.radians(hfov_deg)
        self.window = window
        self.spacing = 2 * grid_extent / (grid_size - 1)               # normalised units
        g = torch.linspace(-grid_extent, grid_extent, grid_size)
        ys, xs = torch.meshgrid(g.flip(0), g, indexing='ij')           # row 0 = north
        self.register_buffer('positions', torch.stack([xs.flatten(), ys.flatten()], -1),
                             persistent=False)                          # (P, 2)
        self.register_buffer('radii', torch.tensor(radii), persistent=False)
        h = torch.arange(n_azimuth)
        self.register_buffer('roll_index', torch.remainder(h[None, :] - h[:, None], n_azimuth),
                             persistent=False)                    # [h, a] = (a - h) mod A
        self.register_buffer('azimuths', (torch.arange(n_azimuth, dtype=torch.float32) + 0.5)
                             * (2 * math.pi / n_azimuth), persistent=False)   # (A,)
        self.register_buffer('headings', torch.arange(n_azimuth, dtype=torch.float32)
                             * (2 * math.pi / n_azimuth), persistent=False)   # (A,)
        r = torch.arange(-window, window + 1)
        dy, dx, dh = torch.meshgrid(r, r, r, indexing='ij')
        self.register_buffer('window_offsets', torch.stack([dy.flatten(), dx.flatten(),
                                                            dh.flatten()], -1),
                             persistent=False)                          # (W3, 3) row, col, h

    @property
    def n_positions(self) -> int:
        return self.positions.shape[0]

    @property
    def bin_rad(self) -> float:
        return 2 * math.pi / self.n_azimuth

    # ------------------------------------------------------------------ features
    def ground_columns(self, fine: torch.Tensor,
                       col_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Cf, h, w), (B, w) -> (B, A, C) unit features at relative azimuths, (B, A) mask."""
        f = self.ground_proj(fine)                                      # (B, C, h, w)
        wts = torch.softmax(self.row_logits[:f.shape[2]], 0)
        cols = (f * wts[None, None, :, None]).sum(2).transpose(1, 2)    # (B, w, C)
        i0, i1, frac, visible = column_sampling(self.azimuths, cols.shape[1],
                                                ground=self.ground, hfov_rad=self.hfov)
        frac = frac[None, :, None]
        out = cols[:, i0] * (1 - frac) + cols[:, i1] * frac
        m = torch.minimum(col_mask[:, i0], col_mask[:, i1]) * visible[None]   # (B, A)
        return nn.functional.normalize(out, dim=-1) * m[..., None], m

    def polar_aerial(self, fine: torch.Tensor) -> torch.Tensor:
        """(B, Cf, h, w) -> (B, P, A, C): unit aerial features along polar rays."""
        f = self.aerial_proj(fine)                                      # (B, C, h, w)
        B, C = f.shape[:2]
        ca, sa = torch.cos(self.azimuths), torch.sin(self.azimuths)
        px = self.positions[:, 0, None, None] + ca[None, :, None] * self.radii[None, None, :]
        py = self.positions[:, 1, None, None] + sa[None, :, None] * self.radii[None, None, :]
        # grid_sample wants (x right, y down) in [-1, 1]: north is up, so y = -north
        pts = torch.stack([px, -py], -1).reshape(1, -1, 1, 2).expand(B, -1, -1, -1)
        s = nn.functional.grid_sample(f, pts, mode='bilinear', padding_mode='zeros',
                                      align_corners=False)             # (B, C, P*A*R, 1)
        P, A, R = self.n_positions, self.n_azimuth, len(self.radii)
        w = torch.softmax(self.radius_logits, 0).t()                    # (C, R)
        s = (s.view(B, C, P * A, R) @ w[None, :, :, None])               # (B, C, PA, 1)
        s = s.view(B, C, P, A).permute(0, 2, 3, 1)                      # (B, P, A, C)
        return nn.functional.normalize(s, dim=-1)

    # ------------------------------------------------------------------ volume
    def forward(self, ground: dict, aerial: dict, *, yaw_prior: torch.Tensor | None = None,
                yaw_prior_range: float | torch.Tensor = math.pi) -> dict:
        """Score every (position, heading) cell.

        :returns: ``volume`` (B, P, A) logits (disallowed headings at -1e4), ``allowed``
            (B, A) headings the prior admits, ``seen`` (B, A) azimuths the ground covers.
            ``aerial['polar']`` (B, P, A, C), when there, is :meth:`polar_aerial` of the
            crop, computed once per crop (:meth:`CIPER.encode_aerial`) and cached with it.
        """
        g, seen = self.ground_columns(ground['fine'], ground['col_mask'])   # (B, A, C)
        a = aerial['polar'] if 'polar' in aerial else self.polar_aerial(aerial['fine'])
        B, P, A, C = a.shape
        g_rolled = g[:, self.roll_index]                                   # (B, A, A, C)
        corr = a.reshape(B, P, A * C) @ g_rolled.reshape(B, A, A * C).transpose(1, 2)
        corr = corr / seen.sum(1).clamp(min=1.0)[:, None, None]            # (B, P, A)
        logits = corr * self.log_temperature.exp()
        allowed = torch.ones(B, A, dtype=torch.bool, device=logits.device)
        if yaw_prior is not None:
            diff = torch.remainder(self.headings[None] - yaw_prior[:, None] + math.pi,
                                   2 * math.pi) - math.pi                   # (B, A)
            allowed = diff.abs() <= yaw_prior_range + self.bin_rad / 2
            allowed = allowed | ~torch.isfinite(yaw_prior)[:, None]     # NaN: no prior
            logits = logits.masked_fill(~allowed[:, None, :], NEG)
        return {'volume': logits, 'allowed': allowed, 'seen': seen}

    # ------------------------------------------------------------------ reading it
    def peaks(self, volume: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` local maxima (3 x 3 x 3, circular in heading): (B, K) logits, cells."""
        B, P, A = volume.shape
        G = self.grid_size
        # the 3 x 3 x 3 maximum as three separable 3-maxima (max_pool3d was 9x slower here)
        v = volume.view(B, G, G, A)
        m = torch.maximum(v, torch.maximum(v.roll(1, -1), v.roll(-1, -1)))  # circular heading
        p = nn.functional.pad(m, (0, 0, 0, 0, 1, 1), value=2 * NEG)
        m = torch.maximum(p[:, 1:-1], torch.maximum(p[:, :-2], p[:, 2:]))   # rows
        p = nn.functional.pad(m, (0, 0, 1, 1), value=2 * NEG)
        m = torch.maximum(p[:, :, 1:-1], torch.maximum(p[:, :, :-2], p[:, :, 2:]))  # cols
        is_peak = volume >= m.reshape(B, P, A)
        # fewer than k maxima (a narrow heading prior): the best other allowed cells follow
        rank = torch.where(is_peak, volume, volume - 1e3).view(B, P * A)
        _, cells = rank.topk(min(k, P * A), dim=1)
        return volume.view(B, P * A).gather(1, cells), cells

    def cell_pose(self, cell: torch.Tensor) -> torch.Tensor:
        """Cells (...) -> (..., 3) normalised (x, y) and heading (rad) of the cell centres."""
        A = self.n_azimuth
        pos = self.positions[cell // A]
        return torch.cat([pos, self.headings[cell % A][..., None]], -1)

    def window_logits(self, volume: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, W3) of the (2w + 1)^3 window around each cell (B, K); -1e4 outside."""
        B, P, A = volume.shape
        G = self.grid_size
        p, h = cell // A, cell % A
        r, c = p // G, p % G
        o = self.window_offsets                                             # (W3, 3)
        rr = r[..., None] + o[:, 0]
        cc = c[..., None] + o[:, 1]
        hh = torch.remainder(h[..., None] + o[:, 2], A)
        inside = (rr >= 0) & (rr < G) & (cc >= 0) & (cc < G)
        flat = (rr.clamp(0, G - 1) * G + cc.clamp(0, G - 1)) * A + hh        # (B, K, W3)
        vals = volume.reshape(B, 1, P * A).expand(-1, flat.shape[1], -1).gather(2, flat)
        return vals.masked_fill(~inside, NEG)

    def soft_argmax(self, volume: torch.Tensor, cell: torch.Tensor) -> dict:
        """Refine cells (B, K) by a soft-argmax in their windows.

        :returns: ``xy`` (B, K, 2) normalised, ``yaw`` (B, K) rad, ``window`` (B, K, W3)
            window probabilities
        """
        logits = self.window_logits(volume, cell) * self.log_window_scale.exp()
        prob = torch.softmax(logits, dim=-1)                                # (B, K, W3)
        off = prob @ self.window_offsets.to(prob.dtype)                     # (B, K, 3)
        base = self.cell_pose(cell)
        # rows grow southwards: +1 row is -spacing in y
        xy = base[..., :2] + self.spacing * torch.stack([off[..., 1], -off[..., 0]], -1)
        yaw = base[..., 2] + self.bin_rad * off[..., 2]
        return {'xy': xy, 'yaw': yaw, 'window': prob}

    def target_distribution(self, xy: torch.Tensor, yaw: torch.Tensor, *,
                            sigma_cells: float = 1.0, sigma_bins: float = 1.0) -> torch.Tensor:
        """Gaussian soft labels (B, P * A) around the true normalised xy (B, 2) and yaw (B,).

        Position sigma in grid cells, heading sigma in bins (circular); rows sum to 1 (to 0
        when the true position lies outside the grid by more than two cells).
        """
        d2 = ((self.positions[None] - xy[:, None]) ** 2).sum(-1) / (self.spacing
                                                                    * sigma_cells) ** 2
        dh = torch.remainder(self.headings[None] - yaw[:, None] + math.pi,
                             2 * math.pi) - math.pi
        h2 = (dh / (self.bin_rad * sigma_bins)) ** 2                         # (B, A)
        t = torch.exp(-0.5 * d2)[:, :, None] * torch.exp(-0.5 * h2)[:, None, :]
        t = t.flatten(1)
        extent = self.positions[:, 0].max() + 2 * self.spacing
        inside = (xy.abs() <= extent).all(-1, keepdim=True).to(t.dtype)
        return t / t.sum(1, keepdim=True).clamp(min=1e-12) * inside

    def nearest_cell(self, xy: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        """Index (B,) of the cell nearest to normalised xy (B, 2) and yaw (B,)."""
        p = torch.cdist(xy, self.positions).argmin(dim=1)
        h = torch.remainder(torch.round(yaw / self.bin_rad), self.n_azimuth).long()
        return p * self.n_azimuth + h
