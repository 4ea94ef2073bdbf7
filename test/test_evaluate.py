"""Evaluator: both modes run end to end; a model that 'knows' the answer scores perfectly."""

import math

import numpy as np
import pytest
import torch

from ciper_ros.data.synthetic import PairTensors
from ciper_ros.model.build import build_model
from ciper_ros.synth.folder import write_city_folder
from ciper_ros.synth.pairs import CitySource, PairConfig, SyntheticPairs
from ciper_ros.synth.world import CityConfig
from ciper_ros.train.evaluate import evaluate

from datafixtures import build_vigor
from tinymodel import TINY_MODEL

TINY = {**TINY_MODEL, 'query_mode': 'free'}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('city')
    write_city_folder(d, CityConfig(seed=501, size_m=250.0), zooms=(19,), progress=False)
    cfg = PairConfig(pano_height=32, pano_width=128, aerial_side_px=64, aerial_side_m=40.0)
    return PairTensors(SyntheticPairs([CitySource.from_folder(d)], cfg, length=10, seed=3))


class Oracle(torch.nn.Module):
    """A 'model' that reads the answer from the batch: checks the evaluator's bookkeeping."""

    def __init__(self, data):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.items = [data[i] for i in range(len(data))]

    def _index(self, image):
        for i, it in enumerate(self.items):
            if torch.equal(it['ground'], image[0]) or torch.equal(it['aerial'], image[0]):
                return i
        return -1   # a gallery tile that is no query's positive

    def encode_ground(self, ground):
        return self._enc(ground)

    def encode_aerial(self, aerial, **kw):      # (polar=False: a v2 option)
        return self._enc(aerial)

    def _enc(self, images):
        idx = [self._index(images[b:b + 1]) for b in range(len(images))]
        desc = torch.zeros(len(idx), 64)
        for b, i in enumerate(idx):
            desc[b, i if i >= 0 else 63] = 1.0 if i >= 0 else 0.1
        return {'desc': desc, 'idx': torch.tensor(idx)}

    def decode(self, g, a, **kw):
        i, j = int(g['idx'][0]), int(a['idx'][0])
        it = self.items[i]
        xy = it['xy'] if i == j else torch.zeros(2)
        yaw = float(it['yaw'])
        return {'pred_logits': torch.tensor([[5.0 if i == j else -5.0]]),
                'pred_xy': xy[None, None],
                'pred_yaw': torch.tensor([[[math.cos(yaw), math.sin(yaw)]]])}


def test_oracle_scores_perfectly(data):
    r = evaluate(Oracle(data), data, batch_size=4, top_k=3)
    assert r['count'] == 10 and r['retrieval']['recall@1'] == 1.0
    assert r['gt_tile']['position_error_m_median'] == pytest.approx(0.0, abs=1e-5)
    assert r['chained']['position_error_m_median'] == pytest.approx(0.0, abs=1e-3)
    assert r['chained']['picked_true_tile'] == 1.0
    assert r['gt_tile']['heading_error_deg_median'] == pytest.approx(0.0, abs=1e-3)
    assert r['baseline_tile_centre']['position_error_m_median'] > 1.0


def test_untrained_model_runs_both_modes(data):
    torch.manual_seed(0)
    r = evaluate(build_model('ciper_t', **TINY), data, batch_size=4, top_k=2)
    for mode in ('gt_tile', 'chained'):
        assert np.isfinite(r[mode]['position_error_m_mean'])
        assert 0.0 <= r[mode]['heading_error_deg_median'] <= 180.0
    assert 0.0 <= r['retrieval']['recall@1'] <= 1.0


def test_oracle_on_a_vigor_gallery_with_semi_positives(tmp_path):
    from ciper_ros.data.vigor import VigorConfig, VigorDataset

    build_vigor(tmp_path, panos_per_city=2)
    data = VigorDataset(tmp_path, VigorConfig(split='test', aerial_px=64, ground_size=(32, 64)))
    r = evaluate(Oracle(data), data, batch_size=2, top_k=3)
    assert r['gallery_size'] == 4 * 8 and r['count'] == 4
    assert r['retrieval']['recall@1'] == 1.0 and r['retrieval']['hit_rate'] == 1.0
    assert r['retrieval_gallery'].startswith('the whole gallery')
    # chained positions come from each tile's own geodesy: zero error for the oracle
    assert r['chained']['position_error_m_median'] == pytest.approx(0.0, abs=0.01)
    assert r['chained']['picked_true_tile'] == 1.0
    assert set(r['gt_tile_per_group']) == {'0', '1', '2', '3'}
