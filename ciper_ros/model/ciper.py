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


class CIPER(nn.Module):
    """forward(ground (B, 3, Hg, Wg), aerial (B, 3, Ha, Wa)) -> named outputs.

    Outputs: ``desc_ground``, ``desc_aerial`` (B, E) un-normalised retrieval descriptors;
    ``pred_logits`` (B, Q); ``pred_xy`` (B, Q, 2) camera position in the crop, east/north,
    normalised by the half-side; ``pred_yaw`` (B, Q, 2) (cos, sin) of the REP-103 heading;
    anchored mode adds ``anchor_logits`` (B, P, A) and ``anchors`` (B, K, 4).
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

    @property
    def shared_encoders(self) -> bool:
        return self.ground_encoder.blocks is self.aerial_encoder.blocks

    def encode_ground(self, ground: torch.Tensor) -> dict:
        enc = self.ground_encoder(ground)
        enc['desc'] = self.ground_desc(enc)
        return enc

    def encode_aerial(self, aerial: torch.Tensor) -> dict:
        enc = self.aerial_encoder(aerial)
        enc['desc'] = self.aerial_desc(enc)
        return enc

    def decode(self, g: dict, a: dict, *, yaw_prior: torch.Tensor | None = None,
               yaw_prior_range: float = math.pi) -> dict:
        """Pose hypotheses of ground encodings ``g`` in aerial encodings ``a`` (same batch)."""
        return self.pose_decoder(g, a, yaw_prior=yaw_prior, yaw_prior_range=yaw_prior_range)

    def forward(self, ground: torch.Tensor, aerial: torch.Tensor, *,
                yaw_prior: torch.Tensor | None = None,
                yaw_prior_range: float = math.pi,
                aerial_negative: torch.Tensor | None = None) -> dict:
        g = self.encode_ground(ground)
        a = self.encode_aerial(aerial)
        out = self.decode(g, a, yaw_prior=yaw_prior, yaw_prior_range=yaw_prior_range)
        out['desc_ground'] = g['desc']
        out['desc_aerial'] = a['desc']
        if aerial_negative is not None:     # (B, 3, Ha, Wa) crops without the camera
            neg = self.decode(g, self.encode_aerial(aerial_negative), yaw_prior=yaw_prior,
                              yaw_prior_range=yaw_prior_range)
            out['neg_logits'] = neg['pred_logits']          # (B, Q)
        return out
