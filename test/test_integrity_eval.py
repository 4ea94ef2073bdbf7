"""Integrity evaluation and the v2 finalize stages, on a tiny v2 model and small cities."""

import json
import math

import numpy as np
import pytest
import torch

from ciper_ros.experiments.integrity_eval import (
    accepted,
    FORWARD_NULL_KINDS,
    match_logits,
    NULL_FRAME_KINDS,
    null_frames,
    null_records,
    raw_match,
    summarize_integrity,
)
from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.model.build import build_model, save_checkpoint
from ciper_ros.synth.folder import write_city_folder
from ciper_ros.synth.world import CityConfig, World

from tinymodel import TINY_FINE_MODEL

PAIRS = {'aerial_side_m': 40.0}          # the tiny model's pairs (as test_recipe trains)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    from ciper_ros.experiments.localization_eval import open_city_localizer

    root = tmp_path_factory.mktemp('integrity_eval')
    for name, seed in (('city', 3), ('other', 5)):
        write_city_folder(root / name, CityConfig(seed=seed, size_m=200.0), zooms=(19,),
                          progress=False)
    torch.manual_seed(0)
    model = build_model('ciper_t2', **TINY_FINE_MODEL).eval()
    ckpt = save_checkpoint(root / 'tiny.pt', model, step=1,
                           extra={'elapsed_s': 1.0, 'train_config': {'pairs': PAIRS}})
    loc, world = open_city_localizer(model=ckpt, city=root / 'city', index_dir=root / 'index',
                                     progress=False)
    return {'root': root, 'ckpt': ckpt, 'model': model, 'loc': loc, 'world': world,
            'other': World.load(root / 'other' / 'city.npz')}


def _frames(scene, n, seed=7, **kw):
    loc = scene['loc']
    return list(null_frames(world=scene['world'], plane=loc.index.plane,
                            crop_side_m=loc.index.crop_side_m, model_config=loc.model.config,
                            n=n, prior_sigma_m=10.0, seed=seed, other_world=scene['other'],
                            **kw))


def test_null_frames_of_every_kind_are_deterministic_and_sized_for_the_model(scene):
    import cv2

    from ciper_ros.experiments.localization_eval import forward_camera
    from ciper_ros.synth.render import CameraPose, GroundRenderer

    frames = _frames(scene, 12)
    assert [f['kind'] for f in frames] == list(NULL_FRAME_KINDS) * 2
    h, w = scene['model'].config.ground_size
    for f in frames:
        assert f['image'].shape == (h, w, 3) and f['image'].dtype == np.uint8
        assert f['camera'] is None and f['prior'].sigma_m == 10.0
        assert f['prior'].problem() is None
    again = _frames(scene, 12)
    assert all(np.array_equal(a['image'], b['image']) for a, b in zip(frames, again, strict=True))
    assert not np.array_equal(frames[0]['image'], _frames(scene, 1, seed=8)[0]['image'])
    # wrong_camera: the true place's forward pinhole image squeezed into the panorama input
    wc = frames[NULL_FRAME_KINDS.index('wrong_camera')]
    xy = scene['world'].plane.xy_m_from_latlon(np.array([wc['truth_latlon_deg']]))[0]
    pinhole = GroundRenderer(scene['world'], epoch=1).pinhole(
        CameraPose(xy[0], xy[1], wc['truth_yaw_rad'], z_m=wc['truth_z_m']), forward_camera())
    assert pinhole.shape[:2] == (288, 512)            # 16:9, given as a 4:1 panorama
    assert np.array_equal(wc['image'], cv2.resize(pinhole, (w, h),
                                                  interpolation=cv2.INTER_AREA))
    # other_city: a real panorama (not an image of nothing), of no place of this city
    oc = frames[NULL_FRAME_KINDS.index('other_city')]['image']
    assert oc.std() > 10 and not np.array_equal(oc, frames[6 + 4]['image'])
    flat = frames[NULL_FRAME_KINDS.index('flat')]['image']
    assert (flat == flat[0, 0]).all()                  # one colour
    with pytest.raises(Exception, match='other_city'):
        list(null_frames(world=scene['world'], plane=scene['loc'].index.plane,
                         crop_side_m=40.0, model_config=scene['model'].config, n=1,
                         prior_sigma_m=10.0, seed=0, kinds=('other_city',)))


def test_forward_null_frames_are_pinhole_images_with_intrinsics_and_heading_prior(scene):
    from ciper_ros.experiments.localization_eval import forward_camera

    frames = _frames(scene, 5, camera='forward', heading_prior_deg=10.0)
    assert [f['kind'] for f in frames] == list(FORWARD_NULL_KINDS)
    cam = forward_camera()
    for f in frames:
        assert f['image'].shape == (cam.height, cam.width, 3) and f['camera'] == cam
        assert abs(f['prior'].yaw_rad - f['truth_yaw_rad']) <= math.radians(10.0) + 1e-12
        assert f['prior'].yaw_sigma_rad == pytest.approx(math.radians(10.0) / 3.0)
    with pytest.raises(Exception, match='wrong_camera'):
        _frames(scene, 1, camera='forward', kinds=('wrong_camera',))


def test_forward_frames_use_their_own_match_calibration(scene):
    from dataclasses import replace

    loc = raw_match(scene['loc'])
    assert loc.match_rule(forward=True) == loc.match_rule() == (1.0, 0.0, 0.0)
    loc.cfg = replace(loc.cfg, top_k=1, match_scale=2.0, match_bias=0.5, min_match_prob=0.6,
                      forward_match_scale=0.5, forward_match_bias=1.0)
    assert loc.match_rule(forward=True) == (0.5, 1.0, 0.6)     # threshold: as the panorama
    raw = raw_match(scene['loc'])
    raw.cfg = replace(raw.cfg, top_k=1)
    kw = {'n': 2, 'prior_sigma_m': 10.0, 'seed': 3, 'other_world': scene['other'],
          'camera': 'forward', 'heading_prior_deg': 10.0, 'progress': False}
    z = match_logits(null_records(raw, scene['world'], **kw))
    got = null_records(loc, scene['world'], **kw)
    np.testing.assert_allclose([r.match_prob for r in got], 1 / (1 + np.exp(-(0.5 * z + 1))),
                               rtol=1e-9)


def test_null_frames_run_through_the_pipeline_and_logits_invert_the_calibration(scene):
    from dataclasses import replace

    loc = raw_match(scene['loc'])
    assert loc.cfg.min_match_prob == 0.0 and loc.index is scene['loc'].index
    recs = null_records(loc, scene['world'], n=6, prior_sigma_m=10.0, seed=7,
                        other_world=scene['other'], progress=False)
    assert [r.extra['kind'] for r in recs] == list(NULL_FRAME_KINDS)
    assert all(math.isfinite(r.match_prob) and 0 < r.match_prob < 1 for r in recs)
    assert all(r.candidates > 0 and math.isfinite(r.prior_x_m) for r in recs)  # prior used
    # one decoded tile: the chosen tile cannot change, so a calibrated localizer's
    # probability is sigmoid(a z + b) of the raw logit z read back from the raw run
    one = raw_match(scene['loc'])
    one.cfg = replace(one.cfg, top_k=1)
    z = match_logits(null_records(one, scene['world'], n=3, prior_sigma_m=10.0, seed=7,
                                  other_world=scene['other'], progress=False))
    cal = raw_match(scene['loc'])
    cal.cfg = replace(cal.cfg, top_k=1, match_scale=2.5, match_bias=-0.7, min_match_prob=0.5)
    got = null_records(cal, scene['world'], n=3, prior_sigma_m=10.0, seed=7,
                       other_world=scene['other'], progress=False)
    want = 1.0 / (1.0 + np.exp(-(2.5 * z - 0.7)))
    np.testing.assert_allclose([r.match_prob for r in got], want, rtol=1e-9)
    # the threshold rejects in the pipeline with the Localizer's reason
    for r in got:
        if r.match_prob < 0.5:
            assert not r.ok and r.reason.startswith('no match: match probability')


def test_acceptance_shares_are_counted_per_kind_and_overall():
    def rec(kind, ok, p):
        r = FrameRecord(stamp_ns=0, ok=ok, match_prob=p)
        r.extra = {'kind': kind}
        return r

    null = [rec('noise', True, 0.9), rec('noise', True, 0.2), rec('sky', False, 0.99),
            rec('sky', True, math.nan), rec('flat', True, 0.6)]
    real = [rec('real', True, 0.95), rec('real', False, 0.95), rec('real', True, 0.4),
            rec('real', True, 0.7)]
    s = summarize_integrity(null, real, threshold=0.6)
    assert list(s['per_kind']) == ['noise', 'sky', 'flat']             # NULL_FRAME_KINDS order
    assert s['per_kind']['noise']['accepted'] == 0.5
    assert s['per_kind']['sky']['accepted'] == 0.0                     # rejected / no head
    assert s['per_kind']['flat']['accepted'] == 1.0                    # at the threshold
    assert s['null_accepted'] == pytest.approx(2 / 5) and s['null_frames'] == 5
    assert s['real_accepted'] == 0.5 and s['real_match_passed'] == 0.75
    assert not accepted(rec('x', True, math.nan), 0.0)
    p = np.array([1e-3, 0.5, 0.9, 1.0, math.nan])
    z = match_logits([FrameRecord(stamp_ns=0, match_prob=v) for v in p])
    np.testing.assert_allclose(z[:3], np.log(p[:3] / (1 - p[:3])))
    assert z[3] > 30 and math.isnan(z[4])


def test_gallery_retrieval_is_the_evaluators_gallery_mode(scene):
    from ciper_ros.experiments.ablate import synthetic_eval_set
    from ciper_ros.experiments.pair_eval import gallery_retrieval
    from ciper_ros.train.evaluate import evaluate

    mc, city = scene['model'].config, scene['root'] / 'city'
    got = gallery_retrieval(scene['model'], mc, {**PAIRS, 'limited_fov_prob': 0.0}, city,
                            n=8, seed=3, batch_size=3)
    data, _ = synthetic_eval_set(mc, {**PAIRS, 'limited_fov_prob': 0.0}, [str(city)], n=8,
                                 seed=3)
    want = evaluate(scene['model'], data)['retrieval']
    assert got['gallery_size'] == 8
    for k in ('recall@1', 'recall@5'):
        assert got[k] == pytest.approx(want[k])


def test_summaries_across_cities_take_mean_spread_and_the_held_out_ratio():
    from ciper_ros.experiments.city_eval import summarize_cities

    def city(median, r1, held=False):
        return {'chained': {'panorama': {'position_error_m_median': median}},
                'retrieval': {'recall@1': r1}, 'held_out': held}

    s = summarize_cities({'0': city(0.4, 0.6), '1': city(0.7, 0.7), '2': city(0.3, 0.35),
                          '0_dry_south': city(1.2, 0.1, held=True)})
    a = s['across']['panorama_median']
    assert a['mean'] == pytest.approx(1.4 / 3) and (a['min'], a['max']) == (0.3, 0.7)
    assert a['per_city'] == {'0': 0.4, '1': 0.7, '2': 0.3}              # held-out not in it
    h = s['held_out']['0_dry_south']['panorama_median']
    assert h['ratio'] == pytest.approx(1.2 / 0.4)                     # over the median city
    rows = {r['key']: r for r in s['targets']}
    assert rows['panorama_median']['met'] and not rows['panorama_median']['met_every_city']
    assert rows['recall@1']['value'] == pytest.approx(0.55) and rows['recall@1']['met']
    assert not rows['held_out_ratio']['met'] and rows['held_out_ratio']['target'] == 1.5
    assert not rows['null_accepted']['met']                           # missing: not met


def test_finalize_calibrates_the_match_head_and_judges_v2_on_several_cities(tmp_path):
    from ciper_ros.experiments.finalize import check, finalize, Protocol
    from ciper_ros.experiments.recipe import ModelRecipe
    from ciper_ros.model.build import load_checkpoint
    from ciper_ros.runtime.assemble import checkpoint_calibration

    recipe = ModelRecipe(work_dir=str(tmp_path / 'work'), city_size_m=200.0,
                         n_train_cities=1, progress_file=str(tmp_path / 'p.pt'),
                         shipped_file=str(tmp_path / 's.pt'))
    write_city_folder(recipe.city_dir(500), CityConfig(seed=500, size_m=200.0), zooms=(19,),
                      progress=False)
    torch.manual_seed(1)
    source = save_checkpoint(tmp_path / 'v2.pt', build_model('ciper_t2', **TINY_FINE_MODEL),
                             step=3, extra={'elapsed_s': 2.0,
                                            'train_config': {'pairs': PAIRS}})
    protocol = Protocol(frames=2, calibration_frames=5, pairs=2, ablation_pairs=2,
                        test_seeds=(0, 1), wide_frames=1, retrieval_crops=5,
                        no_prior_frames=1, integrity_frames=6, match_null_frames=6,
                        top_k=3)
    out_model, card = tmp_path / 'models' / 'm.pt', tmp_path / 'models' / 'CARD.md'
    data = finalize(recipe, source=source, out_model=out_model, card=card, protocol=protocol,
                    progress=False)
    # the match calibration is in the checkpoint, where the runtime reads it
    calib = load_checkpoint(out_model)['calibration']
    fits = data['match_calibration_fit']                 # one fit per camera kind
    assert set(fits) == {'panorama', 'forward'}
    assert set(fits['panorama']['null_kinds']) == set(NULL_FRAME_KINDS)
    assert set(fits['forward']['null_kinds']) == set(FORWARD_NULL_KINDS)
    got = checkpoint_calibration({'calibration': calib})
    assert 'validation city seed 500' in calib['match_fitted_on']
    for name, prefix in (('panorama', ''), ('forward', 'forward_')):
        fit = fits[name]
        assert fit['null_frames'] == 6 and fit['real_candidates'] == 5
        if fit['match_scale'] > 0:      # random weights: the head may rank nulls higher
            assert got[f'{prefix}match_scale'] == fit['match_scale']
            assert got[f'{prefix}min_match_prob'] == fit['min_match_prob']
            # strict (at most 1 % of nulls) unless that keeps under half the real frames
            assert fit['relaxed'] == (fit['real_accepted_strict'] < 0.5)
            assert fit['real_accepted'] >= 0.5 if fit['relaxed'] else \
                fit['min_match_prob'] >= 0.5
        else:
            assert f'{prefix}match_scale' not in got
            assert 'NOT calibrated' in calib['match_fitted_on']
    thresholds = {'panorama': got.get('min_match_prob', 0.5),
                  'forward': got.get('forward_min_match_prob', got.get('min_match_prob', 0.5))}
    # every test city, the held-out look in its own folder, made by finalize
    v2 = data['v2']
    assert list(v2['cities']) == ['0', '1', '0_dry_south']
    held = recipe.root / 'cities' / '0_dry_south'
    assert World.load(held / 'city.npz').config.appearance == 'dry_south'
    assert World.load(recipe.city_dir(0) / 'city.npz').config.appearance == 'default'
    for name, c in v2['cities'].items():
        assert c['chained']['panorama']['frames'] == 2 and c['chained']['forward']['n'] == 2
        assert c['chained']['forward']['camera'] == 'forward'
        assert [c['wide'][s]['prior_sigma_m'] for s in ('20', '30')] == [20.0, 30.0]
        assert c['wide']['30']['frames'] == 1 and c['retrieval']['gallery_size'] == 5
        for cam in ('panorama', 'forward'):
            np_ = c['no_prior'][cam]
            assert np_['frames'] == 1 and np_['prior_sigma_m'] is None
            assert np_['truth_in_gated_tiles'] == 1.0                # the whole index
            assert np_['decoded_tiles'] == 10 and np_['searched_tiles'] > 10  # no_prior_top
            assert np_['within_radius'] <= np_['pose_within_radius']
        integ = c['integrity']
        for cam, thr in thresholds.items():
            assert integ['cameras'][cam]['threshold'] == pytest.approx(thr)
            assert integ['cameras'][cam]['null_frames'] == 6
            assert integ['cameras'][cam]['real_frames'] == 2
        assert set(integ['per_kind']) == {f'panorama {k}' for k in NULL_FRAME_KINDS} | {
            f'forward {k}' for k in FORWARD_NULL_KINDS}
        assert integ['null_frames'] == 12 and integ['real_frames'] == 4
        assert integ['null_accepted'] == pytest.approx(np.mean(
            [integ['cameras'][k]['null_accepted'] for k in thresholds]))
        assert c['held_out'] == (name == '0_dry_south')
    # the test city's chained numbers are the card's reproducible ones
    assert data['chained']['panorama'] == v2['cities']['0']['chained']['panorama']
    rows = {r['key']: r for r in v2['targets']}
    vals = [v2['cities'][n]['integrity']['null_accepted'] for n in ('0', '1')]
    assert rows['null_accepted']['value'] == pytest.approx(np.mean(vals))
    assert rows['null_accepted']['min'] == min(vals)
    ratio = v2['held_out']['0_dry_south']['panorama_median']['ratio']
    assert rows['held_out_ratio']['value'] == ratio or math.isnan(ratio)
    text = card.read_text()
    assert '## v2 targets (issue 14) on several held-out cities' in text
    assert 'Cities: test seeds 0, 1 (200 m' in text and '0_dry_south' in text
    assert '| panorama position error median (m), sigma 10 m | <= 0.5 |' in text
    assert '| integrity: null frames accepted | <= 1 % |' in text
    assert '| integrity: panorama wrong_camera accepted |' in text
    assert '| integrity: forward other_city accepted |' in text
    saved = json.loads((card.parent / 'model_card.json').read_text())
    assert saved['protocol']['test_seeds'] == [0, 1]
    assert saved['v2']['targets'][0]['key'] == 'panorama_median'
    # the card reproduces (its protocol read back, tuples and all)
    index = next((recipe.root / 'final').glob('index_test_*'))         # finalize's own
    res = check(model=out_model, card_json=card.parent / 'model_card.json',
                city=recipe.city_dir(0), index_dir=index, progress=False)
    assert res['ok'], res
    np.testing.assert_equal([r['card'] for r in res['cameras']['forward']], [
        data['chained']['forward'][r['metric']] for r in res['cameras']['forward']])


def test_a_match_fit_is_stored_only_when_the_head_ranks_real_frames_higher():
    from ciper_ros.experiments.finalize import match_calibration_entry, Protocol
    from ciper_ros.runtime.calibration import fit_match_calibration

    rng = np.random.default_rng(0)
    real, null = rng.normal(3.0, 1.0, 200), rng.normal(-3.0, 1.0, 300)
    extra = {'positives': 'chosen tile holds the camera', 'real_candidates': 250,
             'null_kinds': {'noise': 150, 'sky': 150}}
    good = fit_match_calibration(real, null) | extra
    # the forward camera: overlapping logits, so the strict threshold is relaxed
    weak = fit_match_calibration(rng.normal(0.0, 1.0, 200), null + 2.5,
                                 min_real_accept=0.5) | extra
    assert weak['relaxed'] and weak['real_accepted_strict'] < 0.5
    assert weak['real_accepted'] == pytest.approx(0.5, abs=0.01)
    assert weak['null_accepted'] > 0.01                          # the price, reported
    entry = match_calibration_entry({'panorama': good, 'forward': weak},
                                    protocol=Protocol(), other_seed=1000)
    assert entry['match_scale'] == good['match_scale'] > 0
    assert entry['min_match_prob'] == good['min_match_prob']
    assert entry['forward_min_match_prob'] == weak['min_match_prob']
    assert entry['forward_match_scale'] == weak['match_scale']
    assert 'panorama: 200 real chained frames' in entry['match_fitted_on']
    assert 'noise 150, sky 150' in entry['match_fitted_on']
    assert 'forward: ' in entry['match_fitted_on'] and 'relaxed' in entry['match_fitted_on']
    assert np.mean(1 / (1 + np.exp(-(good['match_scale'] * null + good['match_bias'])))
                   >= good['min_match_prob']) <= 0.01        # at most 1 % of nulls pass
    bad = fit_match_calibration(null, real) | extra           # an inverted head
    entry = match_calibration_entry({'panorama': bad}, protocol=Protocol(), other_seed=1000)
    assert set(entry) == {'match_fitted_on'} and 'NOT calibrated' in entry['match_fitted_on']
