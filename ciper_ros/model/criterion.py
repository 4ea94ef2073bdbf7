"""Losses of CIPER as a named dict; weights live in one ``weight_dict``."""

from __future__ import annotations

import torch
from torch import nn

from ciper_ros.model.matcher import HungarianMatcher

DEFAULT_WEIGHTS = {'loss_retrieval': 1.0, 'loss_conf': 1.0, 'loss_xy': 1.0, 'loss_yaw': 1.0,
                   'loss_anchor': 1.0, 'loss_negative': 1.0,
                   # fine models (query_mode 'fine'): the score volume against Gaussian soft
                   # labels, the soft-argmax at the true cell (L1, in cells and bins), and
                   # the match head against pairs that do not match
                   'loss_volume': 1.0, 'loss_refine': 1.0, 'loss_match': 1.0}
QUEUE_EXCLUDE_M = 40.0   # queue entries this close to a query's camera are not negatives


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
             temperature: float = 0.07, scale: torch.Tensor | None = None,
             extra_b: torch.Tensor | None = None,
             extra_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: pair i of (a, b) is the positive.

    ``scale``: a learned logit scale (1 / temperature) instead of ``temperature``;
    ``extra_b`` (M, E): more negatives for the a -> b direction (hard negatives, a memory
    queue); ``extra_mask`` (B, M) True where an extra is not a negative of query i.
    """
    a = nn.functional.normalize(desc_a, dim=-1)
    b = nn.functional.normalize(desc_b, dim=-1)
    s = scale if scale is not None else 1.0 / temperature
    logits = s * a @ b.T                                        # (B, B)
    labels = torch.arange(len(a), device=a.device)
    b2a = nn.functional.cross_entropy(logits.T, labels)
    if extra_b is not None and len(extra_b):
        extra = s * a @ nn.functional.normalize(extra_b, dim=-1).T     # (B, M)
        if extra_mask is not None:
            extra = extra.masked_fill(extra_mask, -1e4)
        logits = torch.cat([logits, extra], 1)
    return (nn.functional.cross_entropy(logits, labels) + b2a) / 2


class DescriptorQueue(nn.Module):
    """Memory of recent aerial descriptors: negatives beyond the batch (cross-batch memory).

    Large batches do not fit a CPU; a FIFO of the last ``size`` aerial descriptors (no
    gradient) adds negatives, as in XBM (Wang et al., CVPR 2020), which shows embeddings
    drift slowly enough after the first steps for stale entries to serve. Each entry keeps
    the camera position of its pair (NaN: a crop of no pair), so entries of the query's own
    place are not counted as negatives. Buffers: saved with the trainer's checkpoint.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer('desc', torch.zeros(size, dim))
        self.register_buffer('latlon_deg', torch.full((size, 2), float('nan'),
                                                      dtype=torch.float64))
        self.register_buffer('count', torch.zeros((), dtype=torch.int64))
        self.register_buffer('head', torch.zeros((), dtype=torch.int64))

    def entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = int(min(int(self.count), self.size))
        return self.desc[:n], self.latlon_deg[:n]

    @torch.no_grad()
    def push(self, desc: torch.Tensor, latlon_deg: torch.Tensor) -> None:
        desc = nn.functional.normalize(desc.detach().float(), dim=-1)[-self.size:]
        latlon_deg = latlon_deg.detach().to(torch.float64)[-self.size:]
        n = len(desc)
        idx = (int(self.head) + torch.arange(n)) % self.size
        self.desc[idx] = desc.to(self.desc.device)
        self.latlon_deg[idx] = latlon_deg.to(self.latlon_deg.device)
        self.head.fill_((int(self.head) + n) % self.size)
        self.count.fill_(min(int(self.count) + n, self.size))

    def near(self, latlon_deg: torch.Tensor, radius_m: float) -> torch.Tensor:
        """(B, n) True where entry j lies within ``radius_m`` of query i's camera."""
        _, ll = self.entries()
        q = latlon_deg.to(torch.float64)
        dlat = (q[:, None, 0] - ll[None, :, 0]) * 111_320.0
        dlon = (q[:, None, 1] - ll[None, :, 1]) * 111_320.0 * torch.cos(torch.deg2rad(q[:, None,
                                                                                          0]))
        close = dlat ** 2 + dlon ** 2 < radius_m ** 2
        return close & torch.isfinite(ll[None, :, 0])


class SetCriterion(nn.Module):
    """Named losses of a batch; ``total(losses)`` applies ``weight_dict``.

    targets: ``xy`` (B, 2) camera position normalised by the crop half-side (east, north);
    ``yaw`` (B,) REP-103 heading in radians.
    """

    def __init__(self, *, matcher: HungarianMatcher | None = None,
                 weight_dict: dict | None = None, retrieval: str = 'triplet',
                 triplet_alpha: float = 20.0, conf_loss: str = 'bce',
                 focal_gamma: float = 2.0, anchors=None, volume=None,
                 queue_size: int = 0, desc_dim: int = 128,
                 volume_target: str = 'gaussian') -> None:
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
        if volume_target not in ('gaussian', 'nearest'):
            raise ValueError(f"volume_target must be 'gaussian' or 'nearest', got "
                             f'{volume_target!r}')
        self.volume = volume          # FinePolarVolume of a fine model (soft labels, refine)
        self.volume_target = volume_target     # 'nearest': the one nearest cell (ablation)
        self.queue = DescriptorQueue(queue_size, desc_dim) if queue_size else None

    def forward(self, outputs: dict, targets: dict) -> dict:
        xy, yaw = targets['xy'], targets['yaw']
        tgt = torch.cat([xy, torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]], -1)  # (B, 4)
        losses = {}
        if 'desc_ground' in outputs and self.retrieval == 'triplet':
            losses['loss_retrieval'] = soft_margin_triplet(
                outputs['desc_ground'], outputs['desc_aerial'], alpha=self.alpha)
        elif 'desc_ground' in outputs:
            losses['loss_retrieval'] = self._info_nce(outputs, targets)

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
        if 'volume' in outputs and self.volume is not None:
            losses.update(self._volume_losses(outputs, xy, yaw))
        if 'match_logit' in outputs and 'null_match_logit' in outputs:
            bce = nn.functional.binary_cross_entropy_with_logits
            pos, neg = outputs['match_logit'], outputs['null_match_logit']
            losses['loss_match'] = (bce(pos, torch.ones_like(pos))
                                    + bce(neg, torch.zeros_like(neg))) / 2
        if 'anchor_logits' in outputs and self.anchors is not None:
            cell = self.anchors.target_cell(xy, yaw)
            losses['loss_anchor'] = nn.functional.cross_entropy(
                outputs['anchor_logits'].flatten(1), cell)
        return losses

    def _info_nce(self, outputs: dict, targets: dict) -> torch.Tensor:
        """Ground -> aerial against the batch, its far crops and the queue; and back."""
        g, a = outputs['desc_ground'], outputs['desc_aerial']
        scale = outputs.get('retrieval_scale')
        extras, masks = [], []
        far = outputs.get('desc_aerial_far')
        if far is not None:
            extras.append(far)
            masks.append(torch.zeros(len(g), len(far), dtype=torch.bool, device=g.device))
        latlon = targets.get('camera_latlon_deg')
        if self.queue is not None and int(self.queue.count) > 0:
            desc, _ = self.queue.entries()
            extras.append(desc.to(g.dtype))
            masks.append(self.queue.near(latlon, QUEUE_EXCLUDE_M).to(g.device)
                         if latlon is not None else
                         torch.zeros(len(g), len(desc), dtype=torch.bool, device=g.device))
        loss = info_nce(g, a, scale=scale, extra_b=torch.cat(extras) if extras else None,
                        extra_mask=torch.cat(masks, 1) if masks else None)
        if self.queue is not None and self.training:
            pushed = [a] + ([far] if far is not None else [])
            ll = [latlon if latlon is not None else
                  torch.full((len(a), 2), float('nan'), dtype=torch.float64)]
            if far is not None:
                ll.append(torch.full((len(far), 2), float('nan'), dtype=torch.float64))
            self.queue.push(torch.cat(pushed), torch.cat(ll))
        return loss

    def _volume_losses(self, outputs: dict, xy: torch.Tensor, yaw: torch.Tensor) -> dict:
        """Soft-label cross-entropy of the volume; L1 of the soft-argmax at the true cell."""
        vol = self.volume
        volume = outputs['volume']
        if self.volume_target == 'gaussian':
            target = vol.target_distribution(xy, yaw)                  # (B, P * A)
        else:
            target = vol.target_distribution(xy, yaw, sigma_cells=1e-3, sigma_bins=1e-3)
        if 'allowed' in outputs:          # no mass on headings the prior rules out
            allowed = outputs['allowed'][:, None, :].expand(-1, volume.shape[1], -1)
            target = target * allowed.flatten(1).to(target.dtype)
            target = target / target.sum(1, keepdim=True).clamp(min=1e-12)
        inside = target.sum(1) > 0.5
        logp = nn.functional.log_softmax(volume.flatten(1), dim=1)
        n = inside.sum().clamp(min=1)
        out = {'loss_volume': -(target * logp).sum(1).sum() / n}
        ref = vol.soft_argmax(volume, vol.nearest_cell(xy, yaw)[:, None])
        d_xy = (ref['xy'][:, 0] - xy).abs().sum(-1) / vol.spacing       # cells
        d_yaw = torch.remainder(ref['yaw'][:, 0] - yaw + torch.pi, 2 * torch.pi) - torch.pi
        per = d_xy + d_yaw.abs() / vol.bin_rad                           # + bins
        out['loss_refine'] = (per * inside).sum() / n
        return out

    def total(self, losses: dict) -> torch.Tensor:
        return sum(self.weight_dict.get(k, 0.0) * v for k, v in losses.items())
