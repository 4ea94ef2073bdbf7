"""CIPER model: shapes, gradients, distinct hypotheses, matcher, criterion, checkpoints."""

import math

import pytest
import torch

from ciper_ros.model.build import (
    build_model,
    load_model,
    ModelConfig,
    PRESETS,
    save_checkpoint,
)
from ciper_ros.model.criterion import info_nce, SetCriterion, soft_margin_triplet
from ciper_ros.model.matcher import HungarianMatcher
from ciper_ros.model.postprocess import hypotheses

from tinymodel import TINY_MODEL

TINY = TINY_MODEL


def tiny(mode: str = 'anchored', **kw):
    torch.manual_seed(0)
    return build_model('ciper_t', query_mode=mode, **{**TINY, **kw})


def batch(B: int = 4, ground=(32, 128), aerial=(64, 64)):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(B, 3, *ground, generator=g), torch.rand(B, 3, *aerial, generator=g),
            {'xy': torch.rand(B, 2, generator=g) - 0.5,
             'yaw': torch.rand(B, generator=g) * 2 * math.pi - math.pi})


@pytest.mark.parametrize('mode', ['single', 'free', 'anchored'])
def test_forward_shapes_and_finite(mode):
    model = tiny(mode)
    ground, aerial, _ = batch()
    out = model(ground, aerial)
    Q = {'single': 1, 'free': 8, 'anchored': 8}[mode]
    assert out['pred_logits'].shape == (4, Q)
    assert out['pred_xy'].shape == (4, Q, 2) and out['pred_yaw'].shape == (4, Q, 2)
    assert out['desc_ground'].shape == (4, 16) and out['desc_aerial'].shape == (4, 16)
    for v in out.values():
        assert torch.isfinite(v.float()).all()
    assert torch.allclose(out['pred_yaw'].norm(dim=-1), torch.ones(4, Q), atol=1e-4)
    if mode == 'anchored':
        assert out['anchor_logits'].shape == (4, 25, 16)


@pytest.mark.parametrize('mode', ['single', 'free', 'anchored'])
def test_every_parameter_receives_a_gradient(mode):
    model = tiny(mode)
    crit = SetCriterion(anchors=model.pose_decoder.anchors)
    ground, aerial, targets = batch()
    losses = crit(model(ground, aerial), targets)
    crit.total(losses).backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f'parameters without gradient: {missing}'


@pytest.mark.parametrize('mode', ['free', 'anchored'])
def test_query_hypotheses_differ(mode):
    model = tiny(mode).eval()
    ground, aerial, _ = batch(2)
    with torch.no_grad():
        out = model(ground, aerial)
    # no two hypotheses are the same pose (the released code's copies collapse to one)
    assert min_pairwise(out) > 1e-5
    if mode == 'free':
        # negative control: identical query embeddings (the released code) collapse
        with torch.no_grad():
            model.pose_decoder.query_embed.weight[:] = model.pose_decoder.query_embed.weight[0]
            assert min_pairwise(model(ground, aerial)) < 1e-6


def min_pairwise(out) -> float:
    pose = torch.cat([out['pred_xy'][0], out['pred_yaw'][0]], -1)      # (Q, 4)
    d = torch.cdist(pose, pose) + torch.eye(len(pose)) * 10
    return d.min().item()


def test_shared_encoder_switch():
    model = tiny('free', share_encoders=True, ground_size=(64, 64))
    assert model.shared_encoders
    n_shared = sum(p.numel() for p in model.parameters())
    n_sep = sum(p.numel() for p in tiny('free', ground_size=(64, 64)).parameters())
    assert n_shared < n_sep
    out = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert out['pred_xy'].shape == (2, 8, 2)
    # a panorama and a square aerial crop: shared weights, a position embedding for each
    model = tiny('anchored', share_encoders=True)
    g, a = model.ground_encoder, model.aerial_encoder
    assert g is not a and g.blocks is a.blocks and g.patch_embed is a.patch_embed
    assert g.pos_embed is not a.pos_embed and g.grid != a.grid
    n_sep = sum(p.numel() for p in tiny('anchored').parameters())
    n_shared = sum(p.numel() for p in model.parameters())
    assert n_shared < n_sep
    out = model(torch.rand(2, 3, 32, 128), torch.rand(2, 3, 64, 64))
    assert out['pred_xy'].shape[:2] == (2, 8)
    # the tie survives a save / load round trip
    from ciper_ros.model.build import model_from_checkpoint
    again = model_from_checkpoint({'config': model.config.to_dict(),
                                   'model': model.state_dict()})
    assert again.ground_encoder.blocks is again.aerial_encoder.blocks
    assert torch.equal(again.aerial_encoder.pos_embed, model.aerial_encoder.pos_embed)


def test_heading_prior_per_item_nan_means_none():
    model = tiny('anchored').eval()
    g, a, _ = batch(2)
    with torch.no_grad():
        ge, ae = model.encode_ground(g), model.encode_aerial(a)
        out = model.pose_decoder.anchors(ge, ae, yaw_prior=torch.tensor([math.nan, 1.0]),
                                         yaw_prior_range=0.05)
    yaw = torch.atan2(out['anchors'][..., 3], out['anchors'][..., 2])
    step = math.pi / model.pose_decoder.anchors.n_azimuth
    assert torch.all((torch.remainder(yaw[1] - 1.0 + math.pi, 2 * math.pi) - math.pi).abs()
                     <= 0.05 + step + 1e-5)                 # item 1: within its prior
    assert (yaw[0].max() - yaw[0].min()) > 0.5              # item 0: unconstrained
    assert torch.isfinite(out['anchor_scores']).all() and out['anchor_scores'][0].max() > -1e3


def test_matcher_batched_equals_single_and_edge_cases():
    torch.manual_seed(3)
    B, Q = 5, 7
    outputs = {'pred_logits': torch.randn(B, Q), 'pred_xy': torch.rand(B, Q, 2),
               'pred_yaw': torch.nn.functional.normalize(torch.randn(B, Q, 2), dim=-1)}
    targets = [torch.rand(1, 4) for _ in range(B)]
    m = HungarianMatcher()
    batched = m(outputs, targets)
    for b in range(B):
        single = m({k: v[b:b + 1] for k, v in outputs.items()}, targets[b:b + 1])[0]
        assert torch.equal(batched[b][0], single[0]) and torch.equal(batched[b][1], single[1])
        # the match is the query with the lowest cost
        cost = 5 * (torch.cat([outputs['pred_xy'][b], outputs['pred_yaw'][b]], -1)
                    - targets[b]).abs().sum(-1) - outputs['pred_logits'][b].sigmoid()
        assert batched[b][0].item() == cost.argmin().item()
    # no targets at all, and mixed counts
    empty = m(outputs, [torch.zeros(0, 4)] * B)
    assert all(len(q) == 0 for q, _ in empty)
    mixed = m(outputs, [torch.zeros(0, 4), torch.rand(3, 4)] + [torch.rand(1, 4)] * 3)
    assert len(mixed[0][0]) == 0 and len(mixed[1][0]) == 3
    assert len(set(mixed[1][0].tolist())) == 3  # one query per target


def test_retrieval_losses_prefer_matching_pairs():
    a = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    good, bad = soft_margin_triplet(a, a), soft_margin_triplet(a, a.roll(1, 0))
    assert good < bad
    assert info_nce(a, a) < info_nce(a, a.roll(1, 0))


@pytest.mark.parametrize('mode,conf', [('anchored', 'bce'), ('free', 'focal')])
def test_criterion_overfits_a_fixed_tiny_batch(mode, conf):
    model = tiny(mode)
    crit = SetCriterion(anchors=model.pose_decoder.anchors, conf_loss=conf)
    ground, aerial, targets = batch(4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        losses = crit(model(ground, aerial), targets)
        loss = crit.total(losses)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first, (first, loss.item())


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = tiny('anchored').eval()
    path = save_checkpoint(tmp_path / 'm.pt', model, step=7, metrics={'r1': 0.5})
    back = load_model(path)
    ground, aerial, _ = batch(2)
    with torch.no_grad():
        a, b = model(ground, aerial), back(ground, aerial)
    for k in ('pred_logits', 'pred_xy', 'desc_ground'):
        assert torch.equal(a[k], b[k])
    (tmp_path / 'bad.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a readable ciper checkpoint'):
        load_model(tmp_path / 'bad.pt')
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / 'missing.pt')
    with pytest.raises(ValueError, match='unknown model config keys'):
        ModelConfig.from_dict({'dim': 8, 'bogus': 1})


def test_postprocess_sorts_and_scales():
    outputs = {'pred_logits': torch.tensor([[0.0, 2.0, -1.0]]),
               'pred_xy': torch.tensor([[[0.1, 0.0], [0.5, -0.5], [0.0, 0.2]]]),
               'pred_yaw': torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])}
    h = hypotheses(outputs, half_side_m=32.0)[0]
    assert h['score'][0] > h['score'][1] > h['score'][2]
    assert h['xy_m'][0].tolist() == [16.0, -16.0]
    assert h['yaw_rad'][0] == pytest.approx(math.pi / 2)


def test_model_sizes():
    n_t = sum(p.numel() for p in build_model('ciper_t').parameters())
    assert 1e6 < n_t < 5e6
    n_s = sum(p.numel() for p in build_model('ciper_s').parameters())
    assert 45e6 < n_s < 60e6  # paper size: about 51 M
    assert PRESETS['ciper_s'].dim == 384 and PRESETS['ciper_s'].depth == 12


@pytest.mark.parametrize('ground,yaw_deg,xy', [('panorama', 30.0, (0.25, -0.25)),
                                               ('panorama', -120.0, (-0.125, 0.375)),
                                               ('pinhole', 75.0, (0.0, 0.25)),
                                               ('pinhole', 200.0, (-0.25, -0.125))])
def test_polar_correlation_peaks_at_the_true_pose(ground, yaw_deg, xy):
    """Check that azimuth-coded features correlate best at the camera's cell.

    Aerial tokens encode their azimuth as seen from the camera and ground columns their
    viewing azimuth: this pins the panorama/pinhole column conventions and polar sampling.
    """
    from ciper_ros.model.anchors import PolarAnchors

    A, D = 32, 32
    anchors = PolarAnchors(dim=D, corr_dim=D, grid_size=9, grid_extent=0.5, n_azimuth=A,
                           top_k=4, ground=ground, hfov_deg=100.0)
    with torch.no_grad():
        for proj in (anchors.ground_proj, anchors.aerial_proj):
            proj.weight.copy_(torch.eye(D))
            proj.bias.zero_()

    def code(az):  # smooth one-hot of an azimuth over D channels
        centres = torch.arange(D) * (2 * math.pi / D)
        d = torch.remainder(az[..., None] - centres + math.pi, 2 * math.pi) - math.pi
        return torch.exp(-(d / 0.2) ** 2)

    cam = torch.tensor(xy)
    yaw = math.radians(yaw_deg)
    h = w = 32  # aerial token grid over the crop, cell centres in [-1, 1]
    c = (torch.arange(w) + 0.5) / w * 2 - 1
    ys, xs = torch.meshgrid(-c, c, indexing='ij')            # row 0 is north
    az = torch.atan2(ys - cam[1], xs - cam[0])
    aerial = {'tokens': code(az).reshape(1, h * w, D), 'grid': (h, w)}
    gw = 64
    u = torch.arange(gw) + 0.5
    if ground == 'panorama':
        col_az = yaw + math.pi - 2 * math.pi * u / gw
    else:
        x = (u / gw * 2 - 1) * math.tan(math.radians(50.0))
        col_az = yaw - torch.atan(x)
    ground_tokens = code(col_az)[None, None].expand(1, 4, gw, D).reshape(1, 4 * gw, D)
    out = anchors({'tokens': ground_tokens, 'grid': (4, gw)}, aerial)
    best = out['anchor_logits'].flatten(1).argmax(1)
    want = anchors.target_cell(cam[None], torch.tensor([yaw]))
    bp, bh = divmod(best.item(), A)
    wp, wh = divmod(want.item(), A)
    assert bp == wp
    assert min((bh - wh) % A, (wh - bh) % A) <= 1
    assert torch.allclose(out['anchors'][0, 0, :2], anchors.positions[wp])


def _deit_state(dim: int, depth: int, heads: int, *, distilled: bool) -> dict:
    """Make a state dict with timm DeiT key names (224 px, patch 16: a 14 x 14 grid)."""
    from ciper_ros.model.vit import ViTEncoder

    src = ViTEncoder(img_size=(224, 224), patch=16, dim=dim, depth=depth, num_heads=heads)
    state = {k: v for k, v in src.state_dict().items() if k not in ('pose_token', 'pos_embed')}
    n_prefix = 2 if distilled else 1
    state['pos_embed'] = torch.randn(1, n_prefix + 196, dim)
    if not distilled:
        state.pop('dist_token')
    state['head.weight'] = torch.randn(1000, dim)        # classifier heads: not ours
    if distilled:
        state['head_dist.weight'] = torch.randn(1000, dim)
    return state


@pytest.mark.parametrize('distilled', [True, False])
def test_init_from_a_local_deit_file(tmp_path, distilled):
    from ciper_ros.model.build import init_from_deit

    model = build_model('ciper_t', **{**TINY_MODEL, 'query_mode': 'anchored'})
    cfg = model.config
    state = _deit_state(cfg.dim, cfg.depth, cfg.num_heads, distilled=distilled)
    path = tmp_path / 'deit.pth'
    torch.save({'model': state}, path)
    report = init_from_deit(model, path)
    for enc in (model.ground_encoder, model.aerial_encoder):
        own = enc.state_dict()
        assert torch.equal(own['blocks.0.attn.qkv.weight'], state['blocks.0.attn.qkv.weight'])
        assert torch.equal(own['pose_token'], state['cls_token'])
        pe = own['pos_embed']
        assert pe.shape[1] == 3 + enc.grid[0] * enc.grid[1]
        assert torch.equal(pe[0, 0], state['pos_embed'][0, 0])       # cls position kept
        if not distilled:
            assert torch.equal(own['dist_token'], state['cls_token'])
    assert 'head.weight' in report['ground']['skipped']
    # the grid was resized: bilinear interpolation of a constant field stays constant
    const = dict(state, pos_embed=torch.full_like(state['pos_embed'], 0.25))
    torch.save(const, path)
    init_from_deit(model, path)
    assert torch.allclose(model.ground_encoder.pos_embed[0, 3:], torch.tensor(0.25))


def test_deit_init_refuses_a_mismatched_file(tmp_path):
    from ciper_ros.model.build import init_from_deit

    model = build_model('ciper_t', **TINY_MODEL)
    path = tmp_path / 'big.pth'
    torch.save(_deit_state(48, 2, 2, distilled=True), path)
    with pytest.raises(ValueError, match='does not fit the ground encoder'):
        init_from_deit(model, path)
    with pytest.raises(ValueError, match='nothing is downloaded'):
        init_from_deit(model, tmp_path / 'missing.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not torch')
    with pytest.raises(ValueError, match='not a readable PyTorch weights file'):
        init_from_deit(model, tmp_path / 'junk.pth')
