"""ONNX export and the backends: onnxruntime matches torch; bad exports are refused."""

import math

import numpy as np
import pytest
import torch

from ciper_ros.cli import main
from ciper_ros.model.build import build_model, save_checkpoint
from ciper_ros.runtime.backends import make_backend, TensorRTBackend

from tinymodel import TINY_MODEL


@pytest.fixture(scope='module', params=['anchored', 'free'])
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f'export_{request.param}')
    torch.manual_seed(0)
    model = root / 'tiny.pt'
    save_checkpoint(model, build_model('ciper_t', **{**TINY_MODEL,
                                                     'query_mode': request.param}), step=1)
    assert main(['export', '--model', str(model), '--out', str(root / 'onnx'),
                 '--decoder-batch', '3']) == 0
    return model, root / 'onnx'


def test_onnxruntime_backend_matches_torch(exported):
    model, onnx_dir = exported
    tb = make_backend('torch', model_path=model)
    ob = make_backend('onnxruntime', model_path=model, export_dir=onnx_dir)
    cfg = tb.config
    gen = torch.Generator().manual_seed(1)
    g_img = torch.rand(1, 3, *cfg.ground_size, generator=gen)
    a_img = torch.rand(5, 3, *cfg.aerial_size, generator=gen)
    gt, go = tb.encode_ground(g_img), ob.encode_ground(g_img)
    for key in ('pose', 'tokens', 'desc'):
        assert torch.allclose(gt[key], go[key], rtol=1e-4, atol=1e-5)
    at = [tb.encode_aerial(a_img[i:i + 1]) for i in range(5)]
    ao = [ob.encode_aerial(a_img[i:i + 1]) for i in range(5)]

    def batch(encs):
        out = {k: torch.cat([e[k] for e in encs]) for k in ('pose', 'tokens', 'desc')}
        out['grid'] = encs[0]['grid']
        return out

    def ground_k(g, k):
        return {key: (v.expand(k, *v.shape[1:]) if torch.is_tensor(v) else v)
                for key, v in g.items()}

    # 2 candidates: one run padded to 3; 5: two runs (3, then 2 padded to 3)
    for k, prior in ((2, None), (2, torch.tensor([0.3, -2.0])), (5, None),
                     (5, torch.tensor([0.3, -2.0, 1.0, 3.1, -0.5]))):
        kw = {} if prior is None else {'yaw_prior': prior,
                                       'yaw_prior_range': math.radians(20)}
        dt = tb.decode(ground_k(gt, k), batch(at[:k]), **kw)
        do = ob.decode(ground_k(go, k), batch(ao[:k]), **kw)
        for key in ('pred_logits', 'pred_xy', 'pred_yaw'):
            assert do[key].shape == dt[key].shape and do[key].shape[0] == k
            assert torch.allclose(dt[key], do[key], rtol=1e-3, atol=1e-4), key


def test_exports_are_checked(exported, tmp_path):
    model, onnx_dir = exported
    import json
    report = json.loads((onnx_dir / 'export.json').read_text())
    for g in report['graphs'].values():
        assert max(g['relative_error'].values()) < 1e-4
        assert 'DFT' not in g['ops']
    other = tmp_path / 'other.pt'
    torch.manual_seed(5)
    save_checkpoint(other, build_model('ciper_t', **TINY_MODEL), step=2)
    with pytest.raises(ValueError, match='re-export it'):
        make_backend('onnxruntime', model_path=other, export_dir=onnx_dir)
    with pytest.raises(ValueError, match='no export.json'):
        make_backend('onnxruntime', model_path=model, export_dir=tmp_path)
    broken = tmp_path / 'broken'
    import shutil
    shutil.copytree(onnx_dir, broken)
    (broken / 'pose_decoder.onnx').write_bytes(b'junk')
    with pytest.raises(ValueError, match='cannot load'):
        make_backend('onnxruntime', model_path=model, export_dir=broken)
    ob = make_backend('onnxruntime', model_path=model, export_dir=onnx_dir)
    g = ob.encode_ground(torch.rand(1, 3, *ob.config.ground_size))
    assert np.isfinite(g['desc'].numpy()).all()


def test_export_defaults_to_the_localizer_top_k(tmp_path):
    from ciper_ros.runtime.export import export_onnx
    from ciper_ros.runtime.localizer import LocalizerConfig

    torch.manual_seed(2)
    model = tmp_path / 'tiny.pt'
    save_checkpoint(model, build_model('ciper_t', **TINY_MODEL), step=1)
    report = export_onnx(model, tmp_path / 'onnx')
    assert report['decoder_batch'] == LocalizerConfig().top_k == 9
    assert report['graphs']['pose_decoder.onnx']['inputs']['g_pose'][0] == 9
    with pytest.raises(ValueError, match='decoder_batch must be a positive integer'):
        export_onnx(model, tmp_path / 'bad', decoder_batch=0)


def test_tensorrt_is_guarded_here(exported):
    model, onnx_dir = exported
    with pytest.raises(ValueError, match='TensorRT Python package|CUDA GPU'):
        make_backend('tensorrt', model_path=model, export_dir=onnx_dir)
    assert TensorRTBackend.__doc__ and 'Unverified' in TensorRTBackend.__doc__
