"""Post-processing: hypotheses in metres, sorted by confidence (numpy out)."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def hypotheses(outputs: dict, *, half_side_m: float | np.ndarray) -> list[dict]:
    """Sort each image's hypotheses by confidence, positions in metres.

    Per image: ``xy_m`` (Q, 2) east/north from the crop centre, ``yaw_rad`` (Q,),
    ``score`` (Q,) probability, in decreasing score.
    """
    prob = outputs['pred_logits'].sigmoid().cpu().numpy()
    xy = outputs['pred_xy'].cpu().numpy().astype(np.float64)      # metres need float64
    cs = outputs['pred_yaw'].cpu().numpy()
    half = np.broadcast_to(np.asarray(half_side_m, dtype=np.float64), (len(prob),))
    out = []
    for b in range(len(prob)):
        order = np.argsort(-prob[b], kind='stable')
        out.append({'xy_m': xy[b, order] * half[b],
                    'yaw_rad': np.arctan2(cs[b, order, 1], cs[b, order, 0]),
                    'score': prob[b, order]})
    return out
