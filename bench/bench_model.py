"""Model benchmark: ciper_t training throughput and forward latency, ciper_s forward latency.

CPU always; on a CUDA machine also CUDA latency (float32 and float16 autocast, timed with
synchronisation) and AMP training throughput. The baseline in the same run is the
paper-size ciper_s, so ratios compare like with like.
"""

from __future__ import annotations

import time

import torch

from ciper_ros.model.build import build_model
from ciper_ros.model.criterion import SetCriterion


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _latency_ms(model, ground, aerial, *, repeats: int, amp: bool = False) -> float:
    device = ground.device
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        for _ in range(3 if device.type == 'cuda' else 1):    # warm-up (kernels, allocator)
            model(ground, aerial)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(ground, aerial)
        _sync(device)
    return (time.perf_counter() - t0) / repeats * 1000.0


def _train_samples_per_s(model, batch: int, steps: int, *, amp: bool = False) -> float:
    cfg = model.config
    device = next(model.parameters()).device
    crit = SetCriterion(anchors=model.pose_decoder.anchors)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    g = torch.rand(batch, 3, *cfg.ground_size, device=device)
    a = torch.rand(batch, 3, *cfg.aerial_size, device=device)
    tgt = {'xy': torch.rand(batch, 2, device=device) - 0.5,
           'yaw': torch.rand(batch, device=device) * 6.28 - 3.14}
    model.train()
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, enabled=amp):
            out = model(g, a)
        loss = crit.total(crit({k: v.float() for k, v in out.items()}, tgt))
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def run() -> dict:
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'cuda': cuda,
           'device_name': torch.cuda.get_device_name(0) if cuda else 'cpu'}
    for name, repeats in (('ciper_t', 20), ('ciper_s', 3)):
        model = build_model(name).eval()
        cfg = model.config
        g = torch.rand(1, 3, *cfg.ground_size)
        a = torch.rand(1, 3, *cfg.aerial_size)
        out[name] = {'params_m': round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                     'ground_size': cfg.ground_size, 'aerial_size': cfg.aerial_size,
                     'forward_ms_batch1_cpu': round(_latency_ms(model, g, a,
                                                                repeats=repeats), 2)}
        if cuda:
            m = model.cuda()
            gc, ac = g.cuda(), a.cuda()
            out[name]['forward_ms_batch1_cuda_fp32'] = round(
                _latency_ms(m, gc, ac, repeats=50), 3)
            out[name]['forward_ms_batch1_cuda_amp_fp16'] = round(
                _latency_ms(m, gc, ac, repeats=50, amp=True), 3)
            for batch in (12, 48):
                out[name][f'train_samples_per_s_batch{batch}_cuda_amp'] = round(
                    _train_samples_per_s(build_model(name).cuda(), batch, 10, amp=True), 1)
    out['ciper_t']['train_samples_per_s_batch12_cpu'] = round(
        _train_samples_per_s(build_model('ciper_t'), 12, 10), 1)
    out['latency_ratio_ciper_s_over_ciper_t'] = round(
        out['ciper_s']['forward_ms_batch1_cpu'] / out['ciper_t']['forward_ms_batch1_cpu'], 1)
    return out
