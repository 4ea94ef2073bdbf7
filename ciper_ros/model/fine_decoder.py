"""Fine pose decoder: set prediction over the score volume's peaks, and a match head.

The hypotheses are the top-K local maxima of :class:`~ciper_ros.model.volume.FinePolarVolume`
refined by a soft-argmax in their windows. CIPER's two-way decoder keeps its role: one
query per hypothesis (content: the ground pose token plus what the volume says around the
peak, i.e. the window's probabilities; position: the hypothesis pose) attends to the aerial
tokens (and they to the queries); heads give a confidence and a bounded residual (at most
one cell and one heading bin, starting at zero). Query and key position encodings are in
one frame: normalised east/north of the crop.

The match head: a "this crop holds the camera" logit per pair from the volume's shape
(peak against its mean and log-sum-exp, spread, the second peak) and the descriptor cosine,
trained on positives against negative crops, far crops, other cities' crops and images
that match nothing; calibrated on validation data at run time.

Outputs add to the volume's: ``pred_logits`` (B, K), ``pred_xy`` (B, K, 2), ``pred_yaw``
(B, K, 2) (cos, sin), ``match_logit`` (B,), ``refined_xy`` / ``refined_yaw`` (the
soft-argmax before the residual), ``peak_cells`` (B, K).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ciper_ros.model.common import MLP, sincos_of
from ciper_ros.model.two_way import TwoWayTransformer
from ciper_ros.model.volume import FinePolarVolume, NEG

MATCH_FEATURES = 6


def token_centres(grid: tuple[int, int], *, device=None) -> torch.Tensor:
    """Centres (h * w, 2) of a token grid, normalised east/north in [-1, 1] (row 0 north)."""
    h, w = grid
    ys = 1 - (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h * 2
    xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w * 2 - 1
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([xx.flatten(), yy.flatten()], -1)


def match_features(volume: torch.Tensor, allowed: torch.Tensor, peak_scores: torch.Tensor,
                   cosine: torch.Tensor) -> torch.Tensor:
    """Shape of a volume (B, P, A) as (B, 6) features for the match head.

    Peak, peak minus mean, peak minus log-mean-exp, standard deviation (over the allowed
    headings only), the gap to the second local maximum, and the descriptor cosine.
    """
    B, P, A = volume.shape
    m = allowed[:, None, :].expand(-1, P, -1).reshape(B, -1).to(volume.dtype)   # (B, PA)
    v = volume.reshape(B, -1)
    n = m.sum(1).clamp(min=1.0)
    mean = (v * m).sum(1) / n
    var = (((v - mean[:, None]) ** 2) * m).sum(1) / n
    lme = torch.logsumexp(v.masked_fill(m == 0, NEG), dim=1) - torch.log(n)
    peak = peak_scores[:, 0]
    second = peak_scores[:, 1] if peak_scores.shape[1] > 1 else peak
    return torch.stack([peak / 10, (peak - mean) / 10, peak - lme, var.clamp(min=1e-8).sqrt(),
                        peak - second, cosine], -1)


class FinePoseDecoder(nn.Module):
    def __init__(self, *, volume: FinePolarVolume, transformer: TwoWayTransformer,
                 top_k: int = 32) -> None:
        super().__init__()
        dim = transformer.dim
        self.volume = volume
        self.transformer = transformer
        self.num_queries = top_k
        self.query_mode = 'fine'
        self.anchors = None                       # v1's PolarAnchors: not in this decoder
        n_window = volume.window_offsets.shape[0]
        self.pose_in = nn.Linear(dim, dim)
        self.window_embed = MLP(n_window + 2, dim, dim)
        self.heading_embed = MLP(dim // 2, dim, dim // 2)
        self.conf_head = MLP(dim, dim, 1)
        self.box_head = MLP(dim, dim, 3, num_layers=3)
        nn.init.zeros_(self.box_head.layers[-1].weight)
        nn.init.zeros_(self.box_head.layers[-1].bias)
        self.match_head = MLP(MATCH_FEATURES, 32, 1)

    def forward(self, ground: dict, aerial: dict, *, yaw_prior: torch.Tensor | None = None,
                yaw_prior_range: float | torch.Tensor = math.pi) -> dict:
        vol = self.volume
        out = vol(ground, aerial, yaw_prior=yaw_prior, yaw_prior_range=yaw_prior_range)
        volume = out['volume']                                           # (B, P, A)
        scores, cells = vol.peaks(volume, self.num_queries)              # (B, K)
        ref = vol.soft_argmax(volume, cells)
        keys = aerial['tokens']                                          # (B, N, D)
        B, _, D = keys.shape
        key_pe = torch.cat([sincos_of(token_centres(aerial['grid'], device=keys.device),
                                      D // 2),
                            keys.new_zeros(keys.shape[1], D - D // 2)], -1)[None]
        cs = torch.stack([torch.cos(ref['yaw']), torch.sin(ref['yaw'])], -1)
        query_pe = torch.cat([sincos_of(ref['xy'].detach(), D // 2),
                              self.heading_embed(sincos_of(cs.detach(), D // 2))], -1)
        peak = scores.detach()[..., None]
        local = torch.cat([ref['window'].detach(), peak / 10, (peak - peak[:, :1]) / 10], -1)
        queries = self.pose_in(ground['pose'])[:, None] + self.window_embed(local)
        q, _ = self.transformer(keys, key_pe, queries, query_pe)         # (B, K, D)
        box = torch.tanh(self.box_head(q))                                # (B, K, 3)
        xy = ref['xy'] + vol.spacing * box[..., :2]
        yaw = ref['yaw'] + vol.bin_rad * box[..., 2]
        logits = self.conf_head(q)[..., 0] + scores
        cosine = (nn.functional.normalize(ground['desc'], dim=-1)
                  * nn.functional.normalize(aerial['desc'], dim=-1)).sum(-1) \
            if 'desc' in ground and 'desc' in aerial else scores.new_zeros(B)
        match = self.match_head(match_features(volume, out['allowed'], scores, cosine))[..., 0]
        out.update({'pred_logits': logits, 'pred_xy': xy,
                    'pred_yaw': torch.stack([torch.cos(yaw), torch.sin(yaw)], -1),
                    'refined_xy': ref['xy'], 'refined_yaw': ref['yaw'], 'peak_cells': cells,
                    'match_logit': match})
        return out
