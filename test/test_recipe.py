"""`make model` recipe on a tiny budget: cities, bank, training; every stage resumes."""

import json

import pytest
import torch
import yaml

from ciper_ros.experiments.recipe import ModelRecipe, TEST_SEED, train, VAL_SEED

from tinymodel import TINY_MODEL


def tiny_recipe(tmp_path, work: str, **kw) -> ModelRecipe:
    """Build a tiny-model recipe on 200 m cities, its snapshot file in tmp_path."""
    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text(yaml.safe_dump({
        'model_overrides': TINY_MODEL, 'pairs': {'aerial_side_m': 40.0}, 'batch_size': 2,
        'max_steps': 2, 'warmup_steps': 1, 'log_every': 1, 'ckpt_every': 1, 'val_every': 2,
        'val_samples': 2}))
    return ModelRecipe(**{'work_dir': str(tmp_path / work), 'train_config': str(cfg),
                          'city_size_m': 200.0, 'progress_file': str(
                              tmp_path / 'models' / 'progress' / 'default_model.pt'),
                          'shipped_file': str(tmp_path / 'models' / 'shipped.pt'), **kw})


def test_recipe_runs_every_stage_and_resumes(tmp_path):
    recipe = tiny_recipe(tmp_path, 'work', n_train_cities=2, renders_per_city=3,
                         shard_size=4)
    assert recipe.train_seeds == [1000, 1001]            # disjoint from val 500 and test 0
    state = train(recipe, progress=False)
    assert state['step'] == 2 and state['finished']
    for seed in (1000, 1001, VAL_SEED, TEST_SEED):
        assert (recipe.city_dir(seed) / 'city.npz').is_file()
    manifest = json.loads((tmp_path / 'work' / 'bank' / 'manifest.json').read_text())
    assert sum(s['count'] for s in manifest['shards']) == 6
    # the next session: more steps, nothing regenerated, training resumes at step 2
    mtime = (recipe.city_dir(1000) / 'city.npz').stat().st_mtime_ns
    more = ModelRecipe(**{**recipe.__dict__, 'overrides': ['max_steps=4']})
    state = train(more, progress=False)
    assert state['step'] == 4 and state['last_record']['resumed']
    assert (recipe.city_dir(1000) / 'city.npz').stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / 'work' / 'state.json').read_text())['step'] == 4
    # `ciper model build --prepare-only`: the stages before training, already done here
    from ciper_ros.experiments.recipe import prepare
    assert prepare(more, progress=False)[0] == tmp_path / 'work' / 'bank'
    assert (recipe.city_dir(1000) / 'city.npz').stat().st_mtime_ns == mtime


def test_snapshot_lets_a_fresh_workspace_continue(tmp_path):
    from ciper_ros.experiments.recipe import snapshot
    from ciper_ros.model.build import load_checkpoint

    common = {'n_train_cities': 1, 'renders_per_city': 2, 'shard_size': 2}
    first = tiny_recipe(tmp_path, 'a', **common)
    assert train(first, progress=False)['step'] == 2
    snap = snapshot(first)
    blob = load_checkpoint(snap)
    # the run's recipe is read back, not the defaults: finalize and its card name it
    assert ModelRecipe.of_run(first.work_dir) == first
    elsewhere = ModelRecipe.of_run(tmp_path / 'clone', snap)      # a fresh clone: from the
    assert elsewhere.train_config == first.train_config            # snapshot it finalizes
    assert elsewhere.work_dir == str(tmp_path / 'clone') and elsewhere.zooms == first.zooms
    assert ModelRecipe.of_run(tmp_path / 'none') == ModelRecipe(work_dir=str(tmp_path / 'none'))
    assert blob['step'] == 2 and blob['curve'] and blob['elapsed_s'] > 0
    assert all(v.dtype != torch.float32 for v in blob['model'].values()
               if v.is_floating_point())                     # float16: small to commit
    # another workspace (a fresh clone): starts from the snapshot, not from step 0
    # a run's --minutes are more minutes, on top of what the snapshot has trained
    from ciper_ros.experiments.recipe import run_budget_minutes
    budget = run_budget_minutes(tiny_recipe(tmp_path, 'b', **common), 5.0, setup_s=60.0)
    assert budget == pytest.approx(blob['elapsed_s'] / 60.0 + 4.0)
    second = tiny_recipe(tmp_path, 'b', overrides=['max_steps=3'], **common)
    state = train(second, progress=False)
    assert state['step'] == 3 and state['last_record']['resumed']
    assert load_checkpoint(state['checkpoint'])['elapsed_s'] >= blob['elapsed_s']
    # a fine-tune (init_checkpoint) starts at step 0 from its weights, not from the snapshot
    tune = tiny_recipe(tmp_path, 'c', overrides=[f'init_checkpoint={snap}', 'max_steps=1'],
                       **common)
    assert tune.fine_tunes and tune.resume_source() is None
    assert run_budget_minutes(tune, 5.0, setup_s=60.0) == pytest.approx(4.0)
    state = train(tune, progress=False)
    assert state['step'] == 1 and not state['last_record']['resumed']


def test_finalize_ships_a_calibrated_model_whose_card_reproduces(tmp_path):
    from ciper_ros.experiments.finalize import check, finalize, Protocol
    from ciper_ros.experiments.localization_eval import evaluate_localization
    from ciper_ros.model.build import load_checkpoint, load_model

    recipe = tiny_recipe(tmp_path, 'work', n_train_cities=1, renders_per_city=2,
                         shard_size=2)
    train(recipe, progress=False)
    protocol = Protocol(frames=6, calibration_frames=8, pairs=4)
    out_model, card = tmp_path / 'models' / 'm.pt', tmp_path / 'models' / 'CARD.md'
    data = finalize(recipe, out_model=out_model, card=card, protocol=protocol,
                    notes=('schedule shortened at step 1',), progress=False)
    blob = load_checkpoint(out_model)
    calib = blob['calibration']
    assert blob['step'] == 2 and all(calib[k] > 0 for k in (
        'cov_scale', 'yaw_cov_scale', 'forward_cov_scale', 'forward_yaw_cov_scale'))
    assert load_model(out_model).config.to_dict() == blob['config']
    assert data['size_bytes'] == out_model.stat().st_size
    text = card.read_text()
    assert '| panorama | position_error_m_median | <= 0.5 |' in text
    assert '| forward | position_error_m_p95 | <= 8 |' in text
    assert (card.parent / 'training_curve.png').stat().st_size > 1000
    assert '## Training history\n\n- schedule shortened at step 1' in text
    saved = json.loads((card.parent / 'model_card.json').read_text())
    assert saved['protocol']['frames'] == 6 and saved['chained']['forward']['frames'] == 6
    assert saved['chained']['forward']['camera'] == 'forward'
    # the runtime applies the checkpoint's own scales unless told otherwise
    assert saved['chained']['panorama']['cov_scale'] == pytest.approx(calib['cov_scale'])
    assert saved['chained']['forward']['cov_scale'] == pytest.approx(
        calib['forward_cov_scale'])
    plain = evaluate_localization(model=out_model, city=recipe.city_dir(TEST_SEED),
                                  index_dir=tmp_path / 'idx', n=6, uncalibrated=True,
                                  progress=False)
    assert plain['cov_scale'] == 1.0
    # a fresh clone's make model continues from the shipped model (no progress snapshot)
    fresh = tiny_recipe(tmp_path, 'fresh', n_train_cities=1, renders_per_city=2, shard_size=2,
                        shipped_file=str(out_model), overrides=['max_steps=3'])
    assert fresh.resume_source() == out_model
    state = train(fresh, progress=False)
    assert state['step'] == 3 and state['last_record']['resumed']
    # its log keeps the shipped model's validation curve (the card's history)
    from ciper_ros.experiments.recipe import validation_curve
    assert [r['step'] for r in validation_curve(tmp_path / 'fresh' / 'train' / 'metrics.jsonl')
            ][:len(blob['curve'])] == [r['step'] for r in blob['curve']]
    # the check regenerates the test city from its seed and reruns the chained mode
    res = check(model=out_model, card_json=card.parent / 'model_card.json', progress=False)
    assert res['ok'], res
    saved['chained']['panorama']['position_error_m_median'] *= 1.2
    (tmp_path / 'bad.json').write_text(json.dumps(saved))
    res = check(model=out_model, card_json=tmp_path / 'bad.json',
                city=recipe.city_dir(TEST_SEED), index_dir=tmp_path / 'idx', progress=False)
    assert not res['ok']
    assert [r['ok'] for r in res['cameras']['panorama']][0] is False
