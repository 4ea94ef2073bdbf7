"""Evaluation in two modes, as the field reports it and as a vehicle runs it.

* ``gt_tile``: pose on the ground-truth aerial crop (the papers' protocol);
* ``chained``: retrieve the query's crop from the gallery, run the pose decoder on the
  top-k retrieved crops and keep the best hypothesis by ``confidence x retrieval`` (what
  the vehicle does); errors in metres on the ground, so a wrong retrieval costs its true
  distance.

The gallery is the dataset's own (:meth:`gallery`, e.g. VIGOR's satellite tiles with
semi-positives) or else the queries' own crops, ranked within the query's group (city,
drive). Baselines reported alongside: the tile centre (predict the crop centre: VIGOR's
"centre" baseline) and chance heading (uniform: 90 degrees mean error).
"""

from __future__ import annotations

from collections import OrderedDict
import math

import numpy as np
import torch
from torch.utils.data import DataLoader

from ciper_ros.data.common import collate, Gallery
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.metrics.pose import pose_metrics
from ciper_ros.metrics.retrieval import descriptor_stats, retrieval_metrics
from ciper_ros.util.errors import UserError

RECALL_1PCT = ('recall@1%_transgeo: the positive within the top G // 100 (TransGeo, '
               'Sample4Geo); recall@1%_vigor: within the top int(0.01 G) + 1 (VIGOR); '
               'semi-positives count as negatives')


def _split(enc: dict, i: int) -> dict:
    return {k: (v[i:i + 1] if torch.is_tensor(v) else v) for k, v in enc.items()}


@torch.no_grad()
def evaluate(model, dataset, *, batch_size: int = 16, top_k: int = 5,
             yaw_prior_range_rad: float | None = None, gallery: Gallery | None = None,
             progress: bool = False) -> dict:
    """Run both modes on a dataset of common-schema items (see ciper_ros.data.common)."""
    from tqdm import tqdm

    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    if gallery is None and hasattr(dataset, 'gallery'):
        gallery = dataset.gallery()
    g_enc, a_enc, meta, desc_g, desc_own = [], [], [], [], []
    for batch in tqdm(loader, desc='encode queries', disable=not progress):
        g = model.encode_ground(batch['ground'].to(device))
        a = model.encode_aerial(batch['aerial'].to(device))
        desc_g.append(torch.nn.functional.normalize(g['desc'].float(), dim=-1).cpu())
        desc_own.append(torch.nn.functional.normalize(a['desc'].float(), dim=-1).cpu())
        for i in range(len(batch['xy'])):
            g_enc.append(_split(g, i))
            a_enc.append(_split(a, i))
            meta.append({k: batch[k][i] for k in ('xy', 'yaw', 'yaw_prior', 'half_side_m',
                                                 'camera_latlon_deg', 'group')})
    n = len(meta)
    if n == 0:
        raise UserError('empty evaluation set')
    desc_g = torch.cat(desc_g)
    group = np.array([int(m['group']) for m in meta])
    half = np.array([float(m['half_side_m']) for m in meta])
    offset_m = np.stack([m['xy'].numpy() for m in meta]) * half[:, None]
    true_yaw = np.array([float(m['yaw']) for m in meta])

    # one metric frame per group: cameras and gallery crop centres
    planes: dict[int, LocalTangentPlane] = {}
    cam_xy = np.zeros((n, 2))
    for i, m in enumerate(meta):
        ll = m['camera_latlon_deg'].numpy()
        plane = planes.setdefault(int(group[i]), LocalTangentPlane(float(ll[0]), float(ll[1])))
        cam_xy[i] = plane.xy_m_from_latlon(ll[None])[0]

    if gallery is None:          # the queries' own crops, ranked within the query's group
        desc_a = torch.cat(desc_own)
        positives = np.arange(n)
        semi = None
        gal_group, gal_half = group, half
        gal_centre_ll = np.stack([planes[int(group[i])].latlon_from_xy_m(
            (cam_xy[i] - offset_m[i])[None])[0] for i in range(n)])
        per_group = True

        def gallery_encoding(j: int) -> dict:
            return a_enc[j]
    else:
        desc = []
        for j0 in tqdm(range(0, gallery.size, batch_size), desc='encode gallery',
                       disable=not progress):
            crops = torch.stack([gallery.load(j)
                                 for j in range(j0, min(gallery.size, j0 + batch_size))])
            desc.append(torch.nn.functional.normalize(
                model.encode_aerial(crops.to(device), polar=False)['desc'].float(),
                dim=-1).cpu())
        desc_a = torch.cat(desc)
        positives, semi = gallery.positives, gallery.semi_positives
        gal_group, gal_half = np.asarray(gallery.group), np.asarray(gallery.half_side_m)
        gal_centre_ll = np.asarray(gallery.centre_latlon_deg)
        per_group = gallery.per_group
        cache: OrderedDict[int, dict] = OrderedDict()

        def gallery_encoding(j: int) -> dict:
            if j not in cache:
                cache[j] = model.encode_aerial(gallery.load(j)[None].to(device))
                if len(cache) > 256:
                    cache.popitem(last=False)
            return cache[j]

    sim = (desc_g @ desc_a.T).numpy()
    if per_group:
        sim = np.where(group[:, None] == gal_group[None, :], sim, -np.inf)

    def decode(i: int, enc_a: dict, half_side_m: float):
        prior = meta[i]['yaw_prior']
        use = yaw_prior_range_rad is not None and bool(torch.isfinite(prior))
        out = model.decode(g_enc[i], enc_a,
                           yaw_prior=prior[None].to(device) if use else None,
                           yaw_prior_range=yaw_prior_range_rad or math.pi)
        b = int(out['pred_logits'][0].argmax())
        xy = out['pred_xy'][0, b].cpu().numpy() * half_side_m
        cs = out['pred_yaw'][0, b].cpu().numpy()
        return xy, math.atan2(cs[1], cs[0]), float(out['pred_logits'][0, b].sigmoid())

    gt_xy, gt_yaw, ch_xy, ch_yaw, ch_true = [], [], [], [], []
    for i in tqdm(range(n), desc='pose', disable=not progress):
        xy, yaw, _ = decode(i, a_enc[i], half[i])
        gt_xy.append(xy)
        gt_yaw.append(yaw)
        cand = np.argsort(-sim[i])[:top_k]
        cand = cand[np.isfinite(sim[i, cand])]
        plane = planes[int(group[i])]
        best = None
        for j in cand:
            xy_j, yaw_j, conf = decode(i, gallery_encoding(int(j)), gal_half[j])
            score = conf * (1.0 + sim[i, j]) / 2.0
            if best is None or score > best[0]:
                centre = plane.xy_m_from_latlon(gal_centre_ll[j][None])[0]
                best = (score, centre + xy_j, yaw_j, int(j))
        ch_xy.append(best[1])
        ch_yaw.append(best[2])
        ch_true.append(best[3] == positives[i])
    gt = pose_metrics(np.array(gt_xy), offset_m, pred_yaw_rad=np.array(gt_yaw),
                      true_yaw_rad=true_yaw)
    chained = pose_metrics(np.array(ch_xy), cam_xy, pred_yaw_rad=np.array(ch_yaw),
                           true_yaw_rad=true_yaw)
    chained['picked_true_tile'] = float(np.mean(ch_true))
    centre = pose_metrics(np.zeros_like(offset_m), offset_m, true_yaw_rad=true_yaw)
    rng = np.random.default_rng(0)
    chance_yaw = pose_metrics(np.zeros_like(offset_m), offset_m,
                              pred_yaw_rad=rng.uniform(-math.pi, math.pi, n),
                              true_yaw_rad=true_yaw)
    out = {'count': n, 'groups': int(len(set(group.tolist()))), 'top_k': top_k,
           'gallery_size': int(len(desc_a)),
           'retrieval': retrieval_metrics(sim, positives, semi_positives=semi),
           'descriptors': {'ground': descriptor_stats(desc_g.numpy()),
                           'aerial': descriptor_stats(desc_a.numpy())},
           'gt_tile': gt, 'chained': chained,
           'baseline_tile_centre': centre,
           'baseline_chance_heading_deg_median': chance_yaw['heading_error_deg_median'],
           'retrieval_gallery': ("crops of the query's group" if per_group
                                 else 'the whole gallery') + '; ' + RECALL_1PCT}
    groups = sorted(set(group.tolist()))
    if 1 < len(groups) <= 32:        # per city / drive / log (Ford reports per log)
        gxy, gyaw = np.array(gt_xy), np.array(gt_yaw)
        out['gt_tile_per_group'] = {
            str(g): pose_metrics(gxy[group == g], offset_m[group == g],
                                 pred_yaw_rad=gyaw[group == g],
                                 true_yaw_rad=true_yaw[group == g]) for g in groups}
    return out
