"""Pose decoder: set prediction of camera poses in the aerial crop.

Query modes:
  ``single``   one query: the ground pose token (what the released code collapses to);
  ``free``     the paper's set of queries, with learned per-query embeddings (not copies);
  ``anchored`` queries anchored to the top-K cells of a geometric polar correlation; the
               decoder refines a bounded residual of each anchor.
Outputs, per query: a confidence logit, position (x, y) normalised by the crop half-side
(east, north, in [-1, 1]) and heading as a unit (cos, sin).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ciper_ros.model.anchors import PolarAnchors
from ciper_ros.model.common import MLP, sincos_2d, sincos_of
from ciper_ros.model.two_way import TwoWayTransformer

QUERY_MODES = ('single', 'free', 'anchored')


class PoseDecoder(nn.Module):
    def __init__(self, *, transformer: TwoWayTransformer, num_queries: int,
                 query_mode: str = 'anchored', anchors: PolarAnchors | None = None,
                 max_residual: float = 0.15, max_yaw_residual_rad: float = 0.35) -> None:
        super().__init__()
        if query_mode not in QUERY_MODES:
            raise ValueError(f'query_mode must be one of {QUERY_MODES}, got {query_mode!r}')
        if query_mode == 'anchored' and anchors is None:
            raise ValueError('anchored queries need a PolarAnchors module')
        dim = transformer.dim
        self.transformer = transformer
        self.query_mode = query_mode
        self.num_queries = 1 if query_mode == 'single' else (
            anchors.top_k if query_mode == 'anchored' else num_queries)
        self.anchors = anchors if query_mode == 'anchored' else None
        self.pose_in = nn.Linear(dim, dim)
        if query_mode == 'free':
            self.query_embed = nn.Embedding(num_queries, dim)
        if query_mode == 'anchored':
            self.anchor_embed = MLP(dim, dim, dim)
            self.score_embed = nn.Linear(1, dim)
        self.conf_head = MLP(dim, dim, 1)
        self.box_head = MLP(dim, dim, 4, num_layers=3)
        self.max_residual = max_residual
        self.max_yaw_residual = max_yaw_residual_rad

    def forward(self, ground: dict, aerial: dict, *, yaw_prior: torch.Tensor | None = None,
                yaw_prior_range: float = math.pi) -> dict:
        keys = aerial['tokens']                                     # (B, N, D)
        B, _, D = keys.shape
        h, w = aerial['grid']
        key_pe = sincos_2d(h, w, D, device=keys.device)[None]       # (1, N, D): real 2-D PE
        base = self.pose_in(ground['pose'])[:, None]                # (B, 1, D)
        out = {}
        if self.query_mode == 'single':
            queries = base
            query_pe = torch.zeros_like(queries)
        elif self.query_mode == 'free':
            query_pe = self.query_embed.weight[None].expand(B, -1, -1)     # (B, Q, D)
            queries = base.expand(-1, self.num_queries, -1)
        else:
            out = self.anchors(ground, aerial, yaw_prior=yaw_prior,
                               yaw_prior_range=yaw_prior_range)
            anc = out['anchors']                                    # (B, K, 4)
            enc = torch.cat([sincos_of(anc[..., :2], D // 2), sincos_of(anc[..., 2:], D // 2)],
                            -1)
            query_pe = self.anchor_embed(enc)
            queries = base + self.score_embed(out['anchor_scores'][..., None].detach() * 0.1)

        # queries attend to aerial tokens (and tokens to queries)
        q, _ = self.transformer(keys, key_pe, queries, query_pe)    # (B, Q, D)
        logits = self.conf_head(q)[..., 0]                          # (B, Q)
        box = self.box_head(q)                                      # (B, Q, 4)
        if self.query_mode == 'anchored':
            anc = out['anchors']
            xy = anc[..., :2] + self.max_residual * torch.tanh(box[..., :2])
            yaw = torch.atan2(anc[..., 3], anc[..., 2]) + \
                self.max_yaw_residual * torch.tanh(box[..., 2])
            cs = torch.stack([torch.cos(yaw), torch.sin(yaw)], -1)
            logits = logits + out['anchor_scores']
        else:
            xy = torch.tanh(box[..., :2])
            cs = nn.functional.normalize(box[..., 2:] + 1e-6, dim=-1)
        out.update({'pred_logits': logits, 'pred_xy': xy, 'pred_yaw': cs})
        return out
