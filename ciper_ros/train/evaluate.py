"""Evaluation in two modes, as the field reports it and as a vehicle runs it.

* ``gt_tile``: pose on the ground-truth aerial crop (the papers' protocol);
* ``chained``: retrieve the query's crop among all crops of the same city, then run the
  pose decoder on the top-k retrieved crops and keep the best hypothesis by
  ``confidence x retrieval`` (what the vehicle does); errors in city metres, so a wrong
  retrieval costs its true distance.

Baselines reported alongside: the tile centre (predict the crop centre: VIGOR's "centre"
baseline) and chance heading (uniform: 90 degrees mean error).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader

from ciper_ros.data.synthetic import collate
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.train.metrics import pose_metrics, retrieval_metrics


@torch.no_grad()
def evaluate(model, dataset, *, batch_size: int = 16, top_k: int = 5,
             yaw_prior_range_rad: float | None = None) -> dict:
    """Run both modes on a :class:`~ciper_ros.data.synthetic.PairTensors` dataset."""
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    g_enc, a_enc, meta = [], [], []
    for batch in loader:
        g = model.encode_ground(batch['ground'].to(device))
        a = model.encode_aerial(batch['aerial'].to(device))
        for i in range(len(batch['xy'])):
            g_enc.append({k: (v[i:i + 1] if torch.is_tensor(v) else v) for k, v in g.items()})
            a_enc.append({k: (v[i:i + 1] if torch.is_tensor(v) else v) for k, v in a.items()})
            meta.append({k: batch[k][i] for k in ('xy', 'yaw', 'yaw_prior', 'half_side_m',
                                                 'camera_latlon_deg', 'city_seed')})
    n = len(meta)
    if n == 0:
        raise ValueError('empty evaluation set')
    desc_g = torch.nn.functional.normalize(torch.cat([e['desc'] for e in g_enc]), dim=-1)
    desc_a = torch.nn.functional.normalize(torch.cat([e['desc'] for e in a_enc]), dim=-1)
    sim = (desc_g @ desc_a.T).cpu().numpy()
    city = np.array([int(m['city_seed']) for m in meta])
    same_city = city[:, None] == city[None, :]
    sim_city = np.where(same_city, sim, -np.inf)

    # metric positions in one frame per city: cameras and crop centres
    cam_xy = np.zeros((n, 2))
    planes: dict[int, LocalTangentPlane] = {}
    for i, m in enumerate(meta):
        c = int(m['city_seed'])
        ll = m['camera_latlon_deg'].numpy()
        planes.setdefault(c, LocalTangentPlane(float(ll[0]), float(ll[1])))
        cam_xy[i] = planes[c].xy_m_from_latlon(ll[None])[0]
    half = np.array([float(m['half_side_m']) for m in meta])
    offset_m = np.stack([m['xy'].numpy() for m in meta]) * half[:, None]
    centre_xy = cam_xy - offset_m
    true_yaw = np.array([float(m['yaw']) for m in meta])

    def decode(i: int, j: int):
        prior = meta[i]['yaw_prior']
        use = yaw_prior_range_rad is not None and bool(torch.isfinite(prior))
        out = model.decode(g_enc[i], a_enc[j],
                           yaw_prior=prior[None].to(device) if use else None,
                           yaw_prior_range=yaw_prior_range_rad or math.pi)
        b = int(out['pred_logits'][0].argmax())
        xy = out['pred_xy'][0, b].cpu().numpy() * half[j]
        cs = out['pred_yaw'][0, b].cpu().numpy()
        return xy, math.atan2(cs[1], cs[0]), float(out['pred_logits'][0, b].sigmoid())

    gt_xy, gt_yaw, ch_xy, ch_yaw, ch_rank = [], [], [], [], []
    for i in range(n):
        xy, yaw, _ = decode(i, i)
        gt_xy.append(xy)
        gt_yaw.append(yaw)
        cand = np.argsort(-sim_city[i])[:top_k]
        cand = cand[np.isfinite(sim_city[i, cand])]
        best = None
        for j in cand:
            xy_j, yaw_j, conf = decode(i, int(j))
            score = conf * (1.0 + sim_city[i, j]) / 2.0
            if best is None or score > best[0]:
                best = (score, centre_xy[j] + xy_j, yaw_j, int(j))
        ch_xy.append(best[1])
        ch_yaw.append(best[2])
        ch_rank.append(best[3] == i)
    gt = pose_metrics(np.array(gt_xy), offset_m, pred_yaw_rad=np.array(gt_yaw),
                      true_yaw_rad=true_yaw)
    chained = pose_metrics(np.array(ch_xy), cam_xy, pred_yaw_rad=np.array(ch_yaw),
                           true_yaw_rad=true_yaw)
    chained['picked_true_tile'] = float(np.mean(ch_rank))
    centre = pose_metrics(np.zeros_like(offset_m), offset_m)
    rng = np.random.default_rng(0)
    chance_yaw = pose_metrics(np.zeros_like(offset_m), offset_m,
                              pred_yaw_rad=rng.uniform(-math.pi, math.pi, n),
                              true_yaw_rad=true_yaw)
    return {'count': n, 'cities': int(len(set(city.tolist()))), 'top_k': top_k,
            'retrieval': retrieval_metrics(sim_city, np.arange(n)),
            'gt_tile': gt, 'chained': chained,
            'baseline_tile_centre': centre,
            'baseline_chance_heading_deg_median': chance_yaw['orientation_error_deg_median'],
            'retrieval_gallery': 'crops of the same city; recall@1% = top ceil(1 % of '
                                 'the whole gallery)'}
