"""The CIPER network: ground and aerial encoders with task tokens and a pose decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from ciper_ros.model.config import ModelConfig
from ciper_ros.model.pose_decoder import PoseDecoder
from ciper_ros.model.vit import ViTEncoder


class DescriptorHead(nn.Module):
    """Retrieval descriptor: mean of two linear heads on the cls and dist tokens."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(dim, out_dim)
        self.head_dist = nn.Linear(dim, out_dim)

    def forward(self, enc: dict) -> torch.Tensor:
        return (self.head(enc['cls']) + self.head_dist(enc['dist'])) / 2   # (B, out_dim)


class GeMDescriptor(nn.Module):
    """Retrieval descriptor pooled from the fine feature map, plus the retrieval token.

    GeM (generalised mean, Radenovic et al. 2018, learnable exponent) over the seen cells of
    a 1 x 1 projection of the fine map, linear to ``out_dim``, plus a linear head on the cls
    token (the task token of the retrieval role). Ground maps pool over seen columns only.

    The output is standardised per dimension, as a batch norm without affine parameters
    (the BNNeck of person re-identification): by the batch's statistics in training, by
    running averages of them in use. Pooled non-negative features share one large common
    direction, which left every pair of descriptors at cosine 0.97 (measured at step 1100
    of the first v2 run, effective rank 10 of 128) and InfoNCE with almost no signal.
    Running averages alone in training (tried first) lag a drifting descriptor: a tiny
    model trained 300 steps still had mean cosine 0.996 on held-out crops.
    """

    STATS_MOMENTUM = 0.1

    def __init__(self, *, fine_dim: int, dim: int, out_dim: int, hidden: int = 256,
                 p: float = 3.0) -> None:
        super().__init__()
        self.proj = nn.Conv2d(fine_dim, hidden, 1)
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.head = nn.Linear(hidden, out_dim)
        self.head_cls = nn.Linear(dim, out_dim)
        self.register_buffer('desc_mean', torch.zeros(out_dim))
        self.register_buffer('desc_var', torch.ones(out_dim))

    def forward(self, enc: dict, *, update_stats: bool = True) -> torch.Tensor:
        """Descriptors (B, out_dim), standardised.

        ``update_stats`` False: a batch that is not the data's (images of nothing) uses the
        running statistics and does not change them.
        """
        raw = self.raw(enc)
        if self.training and update_stats and len(raw) > 1:
            mean, var = raw.mean(0), raw.var(0, unbiased=False)
            with torch.no_grad():
                self.desc_mean.lerp_(mean.detach().float(), self.STATS_MOMENTUM)
                self.desc_var.lerp_(raw.detach().float().var(0), self.STATS_MOMENTUM)
            return (raw - mean) * torch.rsqrt(var + 1e-5)
        return (raw - self.desc_mean) * torch.rsqrt(self.desc_var + 1e-5)

    def raw(self, enc: dict) -> torch.Tensor:
        """Descriptors (B, out_dim) before standardisation."""
        x = nn.functional.relu(self.proj(enc['fine'])).clamp(min=1e-6)     # (B, H, h, w)
        m = enc['col_mask'][:, None, None, :].to(x.dtype)                   # (B, 1, 1, w)
        p = self.p.clamp(1.0, 8.0)
        n = (m.sum((2, 3)) * x.shape[2]).clamp(min=1.0)                     # (B, 1)
        pooled = ((x ** p * m).sum((2, 3)) / n) ** (1.0 / p)                # (B, H)
        return self.head(pooled) + self.head_cls(enc['cls'])                 # (B, out_dim)


class CIPER(nn.Module):
    """forward(ground (B, 3, Hg, Wg), aerial (B, 3, Ha, Wa)) -> named outputs.

    Outputs: ``desc_ground``, ``desc_aerial`` (B, E) un-normalised retrieval descriptors;
    ``pred_logits`` (B, Q); ``pred_xy`` (B, Q, 2) camera position in the crop, east/north,
    normalised by the half-side; ``pred_yaw`` (B, Q, 2) (cos, sin) of the REP-103 heading;
    anchored mode adds ``anchor_logits`` (B, P, A) and ``anchors`` (B, K, 4); fine mode
    (hybrid encoders, :mod:`ciper_ros.model.fine_decoder`) adds ``volume`` (B, P, A) and
    ``match_logit`` (B,). Training extras: ``neg_logits`` (B, Q) on crops without the camera,
    ``desc_aerial_far`` (B, E) of far crops, ``null_match_logit`` (N,) of pairs that do not
    match (negative, far and other places' crops, images of nothing).
    """

    def __init__(self, *, ground_encoder: ViTEncoder, aerial_encoder: ViTEncoder,
                 ground_desc: DescriptorHead, aerial_desc: DescriptorHead,
                 pose_decoder: PoseDecoder, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.ground_encoder = ground_encoder
        self.aerial_encoder = aerial_encoder   # may share its weights (shared encoders)
        self.ground_desc = ground_desc
        self.aerial_desc = aerial_desc
        self.pose_decoder = pose_decoder
        self.config = config if config is not None else ModelConfig()
        if self.config.descriptor == 'gem':     # InfoNCE's learned logit scale (1 / tau)
            self.retrieval_log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def shared_encoders(self) -> bool:
        return self.ground_encoder.blocks is self.aerial_encoder.blocks

    @property
    def has_match_head(self) -> bool:
        return self.config.query_mode == 'fine'

    def encode_ground(self, ground: torch.Tensor, col_mask: torch.Tensor | None = None, *,
                      update_stats: bool = True) -> dict:
        """Encode ground images; ``col_mask`` (B, W): seen columns (hybrid encoders only).

        ``update_stats`` False: do not count this batch in the descriptor's statistics.
        """
        if col_mask is not None:
            enc = self.ground_encoder(ground, col_mask)
        else:
            enc = self.ground_encoder(ground)
        enc['desc'] = self.ground_desc(enc, update_stats=update_stats) \
            if isinstance(self.ground_desc, GeMDescriptor) else self.ground_desc(enc)
        return enc

    def encode_aerial(self, aerial: torch.Tensor, *, polar: bool = True) -> dict:
        """Encode aerial crops; fine models add ``polar`` (B, P, A, C), their polar rays.

        ``polar`` False: descriptors only (an index build or a retrieval gallery has no
        use for the rays, a third of a fine crop's encoding time).
        """
        enc = self.aerial_encoder(aerial)
        enc['desc'] = self.aerial_desc(enc)
        volume = getattr(self.pose_decoder, 'volume', None)
        if volume is not None and polar:   # depends on the crop only: once per crop
            enc['polar'] = volume.polar_aerial(enc['fine'])
        return enc

    def decode(self, g: dict, a: dict, *, yaw_prior: torch.Tensor | None = None,
               yaw_prior_range: float = math.pi) -> dict:
        """Pose hypotheses of ground encodings ``g`` in aerial encodings ``a`` (same batch)."""
        return self.pose_decoder(g, a, yaw_prior=yaw_prior, yaw_prior_range=yaw_prior_range)

    def forward(self, ground: torch.Tensor, aerial: torch.Tensor, *,
                yaw_prior: torch.Tensor | None = None,
                yaw_prior_range: float = math.pi,
                aerial_negative: torch.Tensor | None = None,
                aerial_far: torch.Tensor | None = None,
                ground_null: torch.Tensor | None = None, far_match: bool = False) -> dict:
        """Run a training batch: positives plus the optional negatives.

        ``aerial_negative`` (B, 3, S, S): crops with the camera outside their central half;
        ``aerial_far`` (B, 3, S, S): crops of the same city 30-150 m away; ``ground_null``
        (N, 3, Hg, Wg), N <= B: images of nothing, paired with the first N aerial crops.
        ``far_match``: decode the far crops too (match negatives; costs a third more).
        """
        kw = {'yaw_prior': yaw_prior, 'yaw_prior_range': yaw_prior_range}
        g = self.encode_ground(ground)
        a = self.encode_aerial(aerial)
        out = self.decode(g, a, **kw)
        out['desc_ground'] = g['desc']
        out['desc_aerial'] = a['desc']
        if hasattr(self, 'retrieval_log_scale'):
            out['retrieval_scale'] = self.retrieval_log_scale.clamp(max=math.log(100.0)).exp()
        null = []
        if aerial_negative is not None:     # (B, 3, Ha, Wa) crops without the camera
            neg = self.decode(g, self.encode_aerial(aerial_negative), **kw)
            out['neg_logits'] = neg['pred_logits']          # (B, Q)
            null.append(neg.get('match_logit'))
        if aerial_far is not None:
            far = self.encode_aerial(aerial_far)
            out['desc_aerial_far'] = far['desc']
            if self.has_match_head and far_match:
                null.append(self.decode(g, far, **kw)['match_logit'])
        if self.has_match_head and len(ground) > 1:       # another place (city) of the batch
            other = {k: v.roll(1, 0) if torch.is_tensor(v) else v for k, v in a.items()}
            null.append(self.decode(g, other, **kw)['match_logit'])
        if ground_null is not None and self.has_match_head:
            n = len(ground_null)
            gn = self.encode_ground(ground_null, update_stats=False)
            an = {k: v[:n] if torch.is_tensor(v) else v for k, v in a.items()}
            kn = dict(kw, yaw_prior=None if yaw_prior is None else yaw_prior[:n])
            null.append(self.decode(gn, an, **kn)['match_logit'])
        null = [m for m in null if m is not None]
        if null:
            out['null_match_logit'] = torch.cat(null)
        return out
