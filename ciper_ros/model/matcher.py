"""Hungarian matching of pose hypotheses to ground-truth poses (DETR style)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
import torch
from torch import nn


class HungarianMatcher(nn.Module):
    """cost = cost_pose * L1(x, y, cos, sin) - cost_conf * probability.

    Targets are a list (one per image) of (T_i, 4) tensors (x, y, cos, sin); each image of
    this task has exactly one true pose, but any T_i >= 0 is handled.
    """

    def __init__(self, *, cost_pose: float = 5.0, cost_conf: float = 1.0) -> None:
        super().__init__()
        self.cost_pose = cost_pose
        self.cost_conf = cost_conf

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[torch.Tensor]) -> list[tuple]:
        """Return [(query indices, target indices)] per image, as int64 tensors."""
        B, Q = outputs['pred_logits'].shape
        pred = torch.cat([outputs['pred_xy'], outputs['pred_yaw']], -1).flatten(0, 1)  # (BQ, 4)
        prob = outputs['pred_logits'].sigmoid().flatten(0, 1)                          # (BQ,)
        sizes = [len(t) for t in targets]
        if sum(sizes) == 0:
            empty = torch.empty(0, dtype=torch.int64)
            return [(empty, empty) for _ in range(B)]
        tgt = torch.cat(targets).to(pred)                                             # (T, 4)
        cost = self.cost_pose * torch.cdist(pred, tgt, p=1) - self.cost_conf * prob[:, None]
        cost = cost.view(B, Q, -1).cpu()                                              # (B, Q, T)
        out, start = [], 0
        for b, n in enumerate(sizes):
            c = cost[b, :, start:start + n].numpy()
            start += n
            if n == 0:
                qi = ti = np.empty(0, dtype=np.int64)
            else:
                qi, ti = linear_sum_assignment(c)
            out.append((torch.as_tensor(qi, dtype=torch.int64),
                        torch.as_tensor(ti, dtype=torch.int64)))
        return out
