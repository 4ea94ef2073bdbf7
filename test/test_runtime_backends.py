"""ONNX export and the backends: onnxruntime matches torch for v1 and v2; bad exports refused."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from ciper_ros.cli import main
from ciper_ros.model.build import build_model, save_checkpoint
from ciper_ros.runtime.backends import make_backend, TensorRTBackend
from ciper_ros.runtime.export import INTERFACES
from ciper_ros.util.errors import UserError

from tinymodel import TINY_FINE_MODEL, TINY_MODEL

# query mode -> (preset, tiny overrides, interface version)
MODELS = {'anchored': ('ciper_t', {**TINY_MODEL, 'query_mode': 'anchored'}, 'v1'),
          'free': ('ciper_t', {**TINY_MODEL, 'query_mode': 'free'}, 'v1'),
          'fine': ('ciper_t2', TINY_FINE_MODEL, 'v2')}


def _tiny(path, mode, *, seed=0):
    preset, overrides, _ = MODELS[mode]
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(preset, **overrides), step=1)
    return path


@pytest.fixture(scope='module', params=list(MODELS))
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f'export_{request.param}')
    model = _tiny(root / 'tiny.pt', request.param)
    assert main(['export', '--model', str(model), '--out', str(root / 'onnx'),
                 '--decoder-batch', '3']) == 0
    return model, root / 'onnx', MODELS[request.param][2]


def test_onnxruntime_backend_matches_torch(exported):
    model, onnx_dir, version = exported
    tb = make_backend('torch', model_path=model)
    ob = make_backend('onnxruntime', model_path=model, export_dir=onnx_dir)
    cfg = tb.config
    names = INTERFACES[version]
    gen = torch.Generator().manual_seed(1)
    g_img = torch.rand(1, 3, *cfg.ground_size, generator=gen)
    a_img = torch.rand(5, 3, *cfg.aerial_size, generator=gen)
    gt, go = tb.encode_ground(g_img), ob.encode_ground(g_img)
    assert set(go) == {*names['ground_encoder']['outputs'], 'grid'}
    assert go['grid'] == gt['grid']
    for key in names['ground_encoder']['outputs']:
        assert torch.allclose(gt[key], go[key], rtol=1e-4, atol=1e-5), key
    # a forward camera's footprint in a panorama: unseen columns are exactly 0
    part = g_img.clone()
    part[..., cfg.ground_size[1] // 2:] = 0
    pt, po = tb.encode_ground(part), ob.encode_ground(part)
    for key in names['ground_encoder']['outputs']:
        assert torch.allclose(pt[key], po[key], rtol=1e-4, atol=1e-5), key
    if version == 'v2':
        w = cfg.ground_size[1] // 4
        assert po['col_mask'][0, :w // 2].eq(1).all() and po['col_mask'][0, w // 2:].eq(0).all()
    at = [tb.encode_aerial(a_img[i:i + 1]) for i in range(5)]
    ao = [ob.encode_aerial(a_img[i:i + 1]) for i in range(5)]
    assert set(ao[0]) == {*names['aerial_encoder']['outputs'], 'grid'}
    for key in names['aerial_encoder']['outputs']:
        assert torch.allclose(at[0][key], ao[0][key], rtol=1e-4, atol=1e-5), key

    def batch(encs):      # as the Localizer does: every tensor key along the batch dim
        out = {k: torch.cat([e[k] for e in encs]) for k, v in encs[0].items()
               if torch.is_tensor(v)}
        out['grid'] = encs[0]['grid']
        return out

    def ground_k(g, k):
        return {key: (v.expand(k, *v.shape[1:]) if torch.is_tensor(v) else v)
                for key, v in g.items()}

    # 2 candidates: one run padded to 3; 5: two runs (3, then 2 padded to 3)
    outputs = names['pose_decoder']['outputs']
    for k, prior in ((2, None), (2, torch.tensor([0.3, -2.0])), (5, None),
                     (5, torch.tensor([0.3, -2.0, 1.0, 3.1, -0.5]))):
        kw = {} if prior is None else {'yaw_prior': prior,
                                       'yaw_prior_range': math.radians(20)}
        dt = tb.decode(ground_k(gt, k), batch(at[:k]), **kw)
        do = ob.decode(ground_k(go, k), batch(ao[:k]), **kw)
        assert set(do) == set(outputs)
        for key in outputs:
            assert do[key].shape == dt[key].shape and do[key].shape[0] == k
            assert torch.allclose(dt[key], do[key], rtol=1e-3, atol=1e-4), key
    if version == 'v2':
        assert do['match_logit'].shape == (5,)


def test_exports_are_checked(exported, tmp_path):
    model, onnx_dir, version = exported
    report = json.loads((onnx_dir / 'export.json').read_text())
    assert report['interface']['version'] == version
    assert report['interface']['graphs']['pose_decoder']['inputs'] == \
        list(INTERFACES[version]['pose_decoder']['inputs'])
    for g in report['graphs'].values():
        assert max(g['relative_error'].values()) < 1e-4
        assert 'DFT' not in g['ops']
    decoder = report['graphs']['pose_decoder.onnx']
    assert set(decoder['relative_error_no_prior']) == \
        set(INTERFACES[version]['pose_decoder']['outputs'])
    if version == 'v2':
        assert {'GridSample'} <= set(report['graphs']['aerial_encoder.onnx']['ops'])
        assert {'Max', 'TopK', 'GatherElements'} <= set(decoder['ops'])
    other = tmp_path / 'other.pt'
    _tiny(other, 'anchored' if version == 'v1' else 'fine', seed=5)
    with pytest.raises(ValueError, match='re-export it'):
        make_backend('onnxruntime', model_path=other, export_dir=onnx_dir)
    with pytest.raises(ValueError, match='no export.json'):
        make_backend('onnxruntime', model_path=model, export_dir=tmp_path)
    broken = tmp_path / 'broken'
    shutil.copytree(onnx_dir, broken)
    (broken / 'pose_decoder.onnx').write_bytes(b'junk')
    with pytest.raises(ValueError, match='cannot load'):
        make_backend('onnxruntime', model_path=model, export_dir=broken)
    ob = make_backend('onnxruntime', model_path=model, export_dir=onnx_dir)
    g = ob.encode_ground(torch.rand(1, 3, *ob.config.ground_size))
    assert np.isfinite(g['desc'].numpy()).all()


def test_an_export_of_the_other_interface_is_refused(exported, tmp_path):
    model, onnx_dir, version = exported
    other = _tiny(tmp_path / 'other.pt', 'fine' if version == 'v1' else 'anchored')
    want = 'v2' if version == 'v1' else 'v1'
    with pytest.raises(UserError, match=f'is a {version} export .* needs the {want} '
                                        'interface .*re-export it'):
        make_backend('onnxruntime', model_path=other, export_dir=onnx_dir)
    # an export.json from before v2 has no interface: it is read as v1
    legacy = tmp_path / 'legacy'
    shutil.copytree(onnx_dir, legacy)
    report = json.loads((legacy / 'export.json').read_text())
    del report['interface']
    (legacy / 'export.json').write_text(json.dumps(report))
    if version == 'v1':
        ob = make_backend('onnxruntime', model_path=model, export_dir=legacy)
        assert ob.names['pose_decoder']['inputs'] == ['g_pose', 'g_tokens', 'a_tokens',
                                                      'yaw_prior', 'yaw_prior_range']
        g = ob.encode_ground(torch.rand(1, 3, *ob.config.ground_size))
        assert set(g) == {'pose', 'tokens', 'desc', 'grid'}
    else:
        with pytest.raises(UserError, match='is a v1 export'):
            make_backend('onnxruntime', model_path=model, export_dir=legacy)
    # names in export.json that the graphs do not have
    renamed = tmp_path / 'renamed'
    shutil.copytree(onnx_dir, renamed)
    report = json.loads((renamed / 'export.json').read_text())
    report['interface']['graphs']['pose_decoder']['outputs'][0] = 'logits'
    (renamed / 'export.json').write_text(json.dumps(report))
    with pytest.raises(UserError, match='not the .* interface'):
        make_backend('onnxruntime', model_path=model, export_dir=renamed)


def test_export_defaults_to_the_localizer_top_k(tmp_path):
    from ciper_ros.runtime.export import export_onnx
    from ciper_ros.runtime.localizer import LocalizerConfig

    model = _tiny(tmp_path / 'tiny.pt', 'anchored', seed=2)
    report = export_onnx(model, tmp_path / 'onnx')
    assert report['decoder_batch'] == LocalizerConfig().top_k == 9
    assert report['graphs']['pose_decoder.onnx']['inputs']['g_pose'][0] == 9
    with pytest.raises(ValueError, match='decoder_batch must be a positive integer'):
        export_onnx(model, tmp_path / 'bad', decoder_batch=0)


def test_tensorrt_is_guarded_here(exported):
    model, onnx_dir, _ = exported
    with pytest.raises(ValueError, match='TensorRT Python package|CUDA GPU'):
        make_backend('tensorrt', model_path=model, export_dir=onnx_dir)
    assert TensorRTBackend.__doc__ and 'Unverified' in TensorRTBackend.__doc__
