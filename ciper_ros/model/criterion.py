"""Losses of CIPER as a named dict; weights live in one ``weight_dict``."""

from __future__ import annotations

import torch
from torch import nn

from ciper_ros.model.matcher import HungarianMatcher

DEFAULT_WEIGHTS = {'loss_retrieval': 1.0, 'loss_conf': 1.0, 'loss_xy': 1.0, 'loss_yaw': 1.0,
                   'loss_anchor': 1.0, 'loss_negative': 1.0}


def soft_margin_triplet(desc_a: torch.Tensor, desc_b: torch.Tensor, *,
                        alpha: float = 20.0) -> torch.Tensor:
    """Compute the paper's retrieval loss: soft-margin triplet over in-batch negatives, both ways.

    Descriptors are L2-normalised here; distance = 2 - 2 cos. Pair i of the two batches is
    the positive, every j != i a negative.
    """
    a = nn.functional.normalize(desc_a, dim=-1)
    b = nn.functional.normalize(desc_b, dim=-1)
    dist = 2.0 - 2.0 * a @ b.T                                   # (B, B)
    B = dist.shape[0]
    if B < 2:
        return dist.new_zeros(())
    pos = dist.diagonal()
    off = ~torch.eye(B, dtype=torch.bool, device=dist.device)
    a2b = nn.functional.softplus(alpha * (pos[:, None] - dist))[off].mean()
    b2a = nn.functional.softplus(alpha * (pos[None, :] - dist))[off].mean()
    return (a2b + b2a) / 2


def info_nce(desc_a: torch.Tensor, desc_b: torch.Tensor, *,
             temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE over the in-batch similarity matrix."""
    a = nn.functional.normalize(desc_a, dim=-1)
    b = nn.functional.normalize(desc_b, dim=-1)
    logits = a @ b.T / temperature
    labels = torch.arange(len(a), device=a.device)
    return (nn.functional.cross_entropy(logits, labels)
            + nn.functional.cross_entropy(logits.T, labels)) / 2


class SetCriterion(nn.Module):
    """Named losses of a batch; ``total(losses)`` applies ``weight_dict``.

    targets: ``xy`` (B, 2) camera position normalised by the crop half-side (east, north);
    ``yaw`` (B,) REP-103 heading in radians.
    """

    def __init__(self, *, matcher: HungarianMatcher | None = None,
                 weight_dict: dict | None = None, retrieval: str = 'triplet',
                 triplet_alpha: float = 20.0, conf_loss: str = 'bce',
                 focal_gamma: float = 2.0, anchors=None) -> None:
        super().__init__()
        if retrieval not in ('triplet', 'infonce'):
            raise ValueError(f"retrieval loss must be 'triplet' or 'infonce', got {retrieval!r}")
        if conf_loss not in ('bce', 'focal'):
            raise ValueError(f"conf_loss must be 'bce' or 'focal', got {conf_loss!r}")
        self.matcher = matcher or HungarianMatcher()
        self.weight_dict = dict(DEFAULT_WEIGHTS if weight_dict is None else weight_dict)
        self.retrieval = retrieval
        self.alpha = triplet_alpha
        self.conf_loss = conf_loss
        self.gamma = focal_gamma
        self.anchors = anchors

    def forward(self, outputs: dict, targets: dict) -> dict:
        xy, yaw = targets['xy'], targets['yaw']
        tgt = torch.cat([xy, torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]], -1)  # (B, 4)
        losses = {}
        if 'desc_ground' in outputs:
            fn = soft_margin_triplet if self.retrieval == 'triplet' else info_nce
            kw = {'alpha': self.alpha} if self.retrieval == 'triplet' else {}
            losses['loss_retrieval'] = fn(outputs['desc_ground'], outputs['desc_aerial'], **kw)

        indices = self.matcher(outputs, [t[None] for t in tgt])
        b_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
        q_idx = torch.cat([q for q, _ in indices])
        logits = outputs['pred_logits']
        target_conf = torch.zeros_like(logits)
        target_conf[b_idx, q_idx] = 1.0
        if self.conf_loss == 'bce':
            losses['loss_conf'] = nn.functional.binary_cross_entropy_with_logits(
                logits, target_conf)
        else:
            p = logits.sigmoid()
            ce = nn.functional.binary_cross_entropy_with_logits(logits, target_conf,
                                                                reduction='none')
            pt = p * target_conf + (1 - p) * (1 - target_conf)
            losses['loss_conf'] = (ce * (1 - pt) ** self.gamma).mean()
        matched_xy = outputs['pred_xy'][b_idx, q_idx]
        matched_cs = outputs['pred_yaw'][b_idx, q_idx]
        losses['loss_xy'] = nn.functional.l1_loss(matched_xy, tgt[b_idx, :2])
        losses['loss_yaw'] = nn.functional.l1_loss(matched_cs, tgt[b_idx, 2:])
        if 'neg_logits' in outputs:     # no hypothesis is right on a crop without the camera:
            # the runtime compares tiles by their best hypothesis, so the loss takes the max
            best = outputs['neg_logits'].max(dim=1).values
            losses['loss_negative'] = nn.functional.binary_cross_entropy_with_logits(
                best, torch.zeros_like(best))
        if 'anchor_logits' in outputs and self.anchors is not None:
            cell = self.anchors.target_cell(xy, yaw)
            losses['loss_anchor'] = nn.functional.cross_entropy(
                outputs['anchor_logits'].flatten(1), cell)
        return losses

    def total(self, losses: dict) -> torch.Tensor:
        return sum(self.weight_dict.get(k, 0.0) * v for k, v in losses.items())
