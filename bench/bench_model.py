"""Model benchmark: ciper_t training throughput and forward latency, ciper_s forward latency.

CPU here (2 cores); on a GPU machine the same script reports CUDA numbers too. The
baseline in the same run is the paper-size ciper_s, so ratios compare like with like.
"""

from __future__ import annotations

import time

import torch

from ciper_ros.model.build import build_model
from ciper_ros.model.criterion import SetCriterion


def _latency_ms(model, ground, aerial, *, repeats: int) -> float:
    with torch.no_grad():
        model(ground, aerial)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(ground, aerial)
    return (time.perf_counter() - t0) / repeats * 1000.0


def _train_samples_per_s(model, batch: int, steps: int) -> float:
    cfg = model.config
    crit = SetCriterion(anchors=model.pose_decoder.anchors)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.rand(batch, 3, *cfg['ground_size'])
    a = torch.rand(batch, 3, *cfg['aerial_size'])
    tgt = {'xy': torch.rand(batch, 2) - 0.5, 'yaw': torch.rand(batch) * 6.28 - 3.14}
    model.train()
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss = crit.total(crit(model(g, a), tgt))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def run() -> dict:
    torch.manual_seed(0)
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads(),
           'cuda': torch.cuda.is_available()}
    for name, repeats in (('ciper_t', 20), ('ciper_s', 3)):
        model = build_model(name).eval()
        cfg = model.config
        g = torch.rand(1, 3, *cfg['ground_size'])
        a = torch.rand(1, 3, *cfg['aerial_size'])
        out[name] = {'params_m': round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                     'ground_size': cfg['ground_size'], 'aerial_size': cfg['aerial_size'],
                     'forward_ms_batch1_cpu': round(_latency_ms(model, g, a,
                                                                repeats=repeats), 2)}
        if torch.cuda.is_available():
            m = model.cuda()
            out[name]['forward_ms_batch1_cuda'] = round(
                _latency_ms(m, g.cuda(), a.cuda(), repeats=repeats * 5), 2)
    out['ciper_t']['train_samples_per_s_batch12_cpu'] = round(
        _train_samples_per_s(build_model('ciper_t'), 12, 10), 1)
    out['latency_ratio_ciper_s_over_ciper_t'] = round(
        out['ciper_s']['forward_ms_batch1_cpu'] / out['ciper_t']['forward_ms_batch1_cpu'], 1)
    return out
