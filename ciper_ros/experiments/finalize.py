"""The default model's last stages: calibrate, evaluate, ship, write the model card.

``ciper model finalize`` (and ``make model`` after training) turns the recipe's training
state into ``models/ciper_t_synthetic.pt`` and ``models/MODEL_CARD.md``:

1. the weights as float16 (``candidate.pt`` in the work folder);
2. covariance calibration on the validation city (seed 500): chained frames with a GNSS
   prior, once with the panorama and once with the forward camera, each fitted with
   :func:`~ciper_ros.runtime.calibration.fit_covariance_scales`; the scales go into the
   checkpoint (``calibration``), which the runtime uses unless given a file;
3. evaluation on the test city (seed 0) with the :data:`PROTOCOL`: the evaluator's
   GT-crop and gallery modes on pairs (panorama; forward-camera footprints;
   :func:`~ciper_ros.experiments.city_eval.evaluate_pairs`), and the chained mode through
   the runtime for both cameras;
4. ``models/model_card.json`` (every number, the protocol, the curve) and the card's
   markdown, which shows the issue's targets next to what was measured
   (:mod:`~ciper_ros.experiments.card`).

A model with a match head (v2, ``ciper_t2``) gets two more stages, and the card a v2
section with issue 14's targets:

2b. the match calibration on the validation city (Platt scaling and the threshold that
    accepts at most ``max_false_accept`` of null frames; :mod:`~ciper_ros.experiments.
    integrity_eval`), stored in the checkpoint's ``calibration`` beside the scales;
3b. :func:`~ciper_ros.experiments.city_eval.evaluate_cities`: every test seed (default
    look) and test seed 0 under the held-out appearance preset, each with the chained
    modes at sigma 10, 20 and 30 m, retrieval among ``retrieval_crops`` crops, the
    whole-city search without a prior and integrity (null and real acceptance at the
    calibrated threshold); mean / min / max across the default-look cities and the
    held-out look's ratio to them.

This module keeps the protocol, the calibration stages, the orchestration and
:func:`check`, which reruns the chained evaluation with the card's protocol and compares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
import json
import math
import os
from pathlib import Path
import platform
import time

from ciper_ros.experiments.card import plot_curve, render_card, SHARES, targets_table
from ciper_ros.experiments.city_eval import (
    ensure_city,
    eval_cameras,
    evaluate_cities,
    evaluate_pairs,
    index_folder,
    load_world,
)
from ciper_ros.experiments.recipe import (
    city_appearance,
    ModelRecipe,
    TEST_SEED,
    VAL_SEED,
    validation_curve,
)
from ciper_ros.metrics.pose import upgrade_metric_names
from ciper_ros.synth.appearance import HELD_OUT_PRESET
from ciper_ros.util.atomic import atomic_path, atomic_write_text
from ciper_ros.util.errors import UserError

MODEL_FILE = Path('models') / 'ciper_t_synthetic.pt'
CARD_FILE = Path('models') / 'MODEL_CARD.md'
CARD_JSON = Path('models') / 'model_card.json'
CURVE_PNG = Path('models') / 'training_curve.png'
MIN_MATCH_POSITIVES = 20   # real frames at their true tile the match fit needs, else all
# chained metrics the reproduction check compares (errors: 5 % relative; shares: 5 points)
CHECKED = ('position_error_m_median', 'position_error_m_p95', 'heading_error_deg_median',
           'position_within_1m', 'truth_in_gated_tiles', 'chosen_tile_correct',
           'coverage_95')


@dataclass(frozen=True)
class Protocol:
    """The documented evaluation: seeds, sizes and priors (the card's reproduction key)."""

    test_seed: int = TEST_SEED
    val_seed: int = VAL_SEED
    frames: int = 200                 # chained frames per camera (test city)
    calibration_frames: int = 200     # chained frames per camera (validation city)
    pairs: int = 300                  # GT-crop / gallery pairs (test city)
    ablation_pairs: int = 150         # the ablation's pairs (training's pair options)
    frame_seed: int = 12345
    calibration_seed: int = 777
    prior_sigma_m: float = 10.0
    forward_heading_prior_deg: float = 10.0
    top_k: int = 9                    # the runtime's default (LocalizerConfig)
    # models with a match head (v2) only; a card without these fields reproduces as before.
    # Sizes: a partly trained ciper_t2 took 1430 s for a fifth of these frame counts on this
    # 2-core CPU shared with a training run (about 1.9 s a frame, a third of the CPU);
    # alone, about 0.5 s a frame: ~5 min validation, ~7 min per city, ~7 min test-city
    # pairs, ~40 min in all
    test_seeds: tuple[int, ...] = (0, 1, 2)    # test split, never trained on
    held_out_appearance: str = HELD_OUT_PRESET  # test seed `test_seed` under it ('': none)
    wide_sigmas_m: tuple[float, ...] = (20.0, 30.0)   # panorama at wider GNSS priors
    wide_frames: int = 60             # chained panorama frames per wide sigma and city
    retrieval_crops: int = 300        # recall@k among this many crops per city
    no_prior_frames: int = 50         # whole-city search, frames per camera and city
    no_prior_radius_m: float = 5.0
    integrity_frames: int = 60        # null frames per test city (every kind in turn)
    match_null_frames: int = 120      # null frames fitting the match calibration (val city)
    max_false_accept: float = 0.01    # null frames the fitted threshold may accept
    min_real_accept: float = 0.5      # ... unless it keeps fewer real frames: then this share
    integrity_seed: int = 4242

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        """Read a card's protocol (JSON lists back to tuples; missing fields: defaults)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


PROTOCOL = Protocol()


def calibrate_on_city(*, model: Path, city: Path, index_dir: Path, protocol: Protocol,
                      progress: bool = True) -> dict:
    """Fit the covariance scales (panorama and forward camera) on a validation city."""
    return calibration_run(model=model, city=city, index_dir=index_dir, protocol=protocol,
                           progress=progress)[0]


def calibration_run(*, model: Path, city: Path, index_dir: Path, protocol: Protocol,
                    progress: bool = True,
                    match: dict | None = None) -> tuple[dict, object, object, dict]:
    """(scales per camera, localizer, world, records per camera) of the validation run.

    The localizer has unit covariance scales and an uncalibrated match head
    (:func:`~ciper_ros.experiments.integrity_eval.raw_match`: nothing rejected for its
    match probability), so the same records give the covariance fit and the raw match
    logits; a model without a match head gets exactly the records it always got.
    ``match``: a fitted match calibration (LocalizerConfig fields) instead: the covariance
    of a match-head model depends on its calibrated probability (the mixture with the
    prior), so its scales are refitted with it, on the frames it accepts.
    """
    from ciper_ros.experiments.integrity_eval import raw_match
    from ciper_ros.experiments.localization_eval import (
        chained_frames,
        chained_records,
        open_city_localizer,
        WHOLE_CITY_CACHE_MB,
    )
    from ciper_ros.runtime.calibration import fit_covariance_scales, uncalibrated

    loc, world = open_city_localizer(model=model, city=city, index_dir=index_dir,
                                     top_k=protocol.top_k, uncalibrated=True,
                                     cache_mb=WHOLE_CITY_CACHE_MB, progress=progress)
    loc = raw_match(uncalibrated(loc))
    if match:
        loc.cfg = replace(loc.cfg, **match)
    out, records = {}, {}
    for name, cam in eval_cameras(protocol).items():
        frames = chained_frames(world=world, plane=loc.index.plane,
                                crop_side_m=loc.index.crop_side_m,
                                model_config=loc.model.config, n=protocol.calibration_frames,
                                prior_sigma_m=protocol.prior_sigma_m,
                                heading_prior_deg=cam['heading_prior_deg'],
                                seed=protocol.calibration_seed, camera=cam['camera'])
        records[name] = chained_records(loc, frames, total=protocol.calibration_frames,
                                        desc=f'calibrate ({name})', progress=progress)
        out[name] = fit_covariance_scales([r for r in records[name] if r.ok] if match
                                          else records[name])
    return out, loc, world, records


def calibrate_match(loc, world, records: dict, *, other_world, protocol: Protocol,
                    progress: bool = True) -> dict:
    """Fit the match head's Platt scaling and threshold per camera on validation frames.

    Per camera of :func:`eval_cameras` (panorama; forward, whose 90-degree footprint gives
    the head less evidence, so its logits sit lower): real: its chained frames whose chosen
    tile holds the camera (their true place; every real frame when fewer than
    :data:`MIN_MATCH_POSITIVES` do); null: ``match_null_frames`` frames of that camera's
    kinds (:mod:`~ciper_ros.experiments.integrity_eval`) with a prior in the same city.
    ``loc`` must be a :func:`~ciper_ros.experiments.integrity_eval.raw_match` localizer.
    Returns {camera name: fit}.
    """
    from ciper_ros.experiments.integrity_eval import match_logits, null_records
    from ciper_ros.runtime.calibration import fit_match_calibration

    fits = {}
    for name, cam in eval_cameras(protocol).items():
        every = records[name]
        real = [r for r in every if r.extra['chosen_tile_correct']]
        positives = 'chosen tile holds the camera'
        if len(real) < MIN_MATCH_POSITIVES:     # a barely trained model: every real frame
            real, positives = every, 'every real frame (too few at their true tile)'
        null = null_records(loc, world, n=protocol.match_null_frames,
                            prior_sigma_m=protocol.prior_sigma_m,
                            seed=protocol.calibration_seed, other_world=other_world,
                            camera=cam['camera'], heading_prior_deg=cam['heading_prior_deg'],
                            desc=f'calibrate (null frames, {name})', progress=progress)
        fit = fit_match_calibration(match_logits(real), match_logits(null),
                                    max_false_accept=protocol.max_false_accept,
                                    min_real_accept=protocol.min_real_accept)
        kinds = {}
        for r in null:
            kinds[r.extra['kind']] = kinds.get(r.extra['kind'], 0) + 1
        fits[name] = fit | {'real_candidates': len(every), 'positives': positives,
                            'null_kinds': kinds}
    return fits


def match_calibration_entry(fits: dict, *, protocol: Protocol, other_seed: int) -> dict:
    """Give the checkpoint's match calibration keys from the per-camera fits.

    ``panorama``'s fit gives ``match_*`` (every frame the model takes as it is),
    ``forward``'s the ``forward_match_*`` keys. A fit whose scale is not positive (the head
    ranks null frames above real ones: an untrained or broken head) is not stored: the
    runtime keeps its uncalibrated default (scale 1, bias 0, threshold 0.5; forward: as
    the panorama) and ``match_fitted_on`` says why.
    """
    out, said = {}, []
    for name, fit in fits.items():
        prefix = 'forward_' if name == 'forward' else ''
        kinds = ', '.join(f'{k} {v}' for k, v in fit['null_kinds'].items())
        on = (f'{name}: {fit["real_frames"]} real chained frames ({fit["positives"]}; of '
              f'{fit["real_candidates"]}) vs {fit["null_frames"]} null frames ({kinds}; '
              f'other_city: training city {other_seed}), ')
        if not fit['match_scale'] > 0:
            said.append(f'{on}NOT calibrated (fitted scale {fit["match_scale"]:.3g} <= 0: '
                        'null frames score above real ones)')
            continue
        out |= {f'{prefix}match_scale': fit['match_scale'],
                f'{prefix}match_bias': fit['match_bias'],
                f'{prefix}min_match_prob': fit['min_match_prob']}
        rule = (f'threshold relaxed to keep {100 * protocol.min_real_accept:g} % of real '
                f'frames (at most {100 * protocol.max_false_accept:g} % of null frames '
                f'would keep {100 * fit.get("real_accepted_strict", 0):.0f} %)'
                if fit.get('relaxed') else
                f'at most {100 * protocol.max_false_accept:g} % of null frames accepted')
        said.append(f'{on}{rule}: real {100 * fit["real_accepted"]:.0f} % / null '
                    f'{100 * fit["null_accepted"]:.1f} % accepted')
    return out | {'match_fitted_on': f'validation city seed {protocol.val_seed}; '
                                     + '; '.join(said)}


def finalize(recipe: ModelRecipe, *, source: str | os.PathLike | None = None,
             out_model: str | os.PathLike = MODEL_FILE, card: str | os.PathLike = CARD_FILE,
             protocol: Protocol = PROTOCOL, notes: tuple[str, ...] = (),
             progress: bool = True) -> dict:
    """Calibrate, evaluate and ship the recipe's current weights; return the card's data.

    ``notes``: lines for the card's training history (what changed during training).
    """
    from ciper_ros.experiments.localization_eval import evaluate_localization
    from ciper_ros.model.build import load_checkpoint, model_from_checkpoint, save_checkpoint

    t0 = time.perf_counter()
    if protocol.held_out_appearance:       # a wrong name fails now, not after calibration
        from ciper_ros.synth.appearance import get_preset
        get_preset(protocol.held_out_appearance)
    root = recipe.root / 'final'
    last = recipe.root / 'train' / 'last.pt'
    source = Path(source) if source else (last if last.is_file()
                                          else recipe.resume_source())
    if source is None:
        raise FileNotFoundError(f'nothing to finalize: no {last}, progress snapshot or '
                                'shipped recipe checkpoint')
    blob = load_checkpoint(source)
    model = model_from_checkpoint(blob)
    curve = [upgrade_metric_names(r) for r in blob.get('curve') or
             validation_curve(recipe.root / 'train' / 'metrics.jsonl')]
    train_info = {'step': int(blob['step']), 'elapsed_s': float(blob.get('elapsed_s', 0.0)),
                  'source': str(source)}
    extra = {'elapsed_s': train_info['elapsed_s'], 'train_config': blob.get('train_config', {}),
             'recipe': asdict(recipe), 'curve': curve}
    # 1-2: candidate weights, then calibration on the validation city
    candidate = save_checkpoint(root / 'candidate.pt', model, step=train_info['step'],
                                half=True, extra=extra)
    stage_s = {}
    t1 = time.perf_counter()
    # a fresh clone finalizing the committed snapshot has no cities yet: make the ones used
    for seed in (protocol.val_seed, protocol.test_seed):
        ensure_city(recipe, recipe.city_dir(seed), seed=seed, progress=progress)
    calib, vloc, vworld, vrecords = calibration_run(
        model=candidate, city=recipe.city_dir(protocol.val_seed),
        index_dir=index_folder(root, 'val', candidate), protocol=protocol, progress=progress)
    calibration = {'cov_scale': calib['panorama']['cov_scale'],
                   'yaw_cov_scale': calib['panorama']['yaw_cov_scale'],
                   'forward_cov_scale': calib['forward']['cov_scale'],
                   'forward_yaw_cov_scale': calib['forward']['yaw_cov_scale'],
                   'fitted_on': f'validation city seed {protocol.val_seed}, '
                                f'{protocol.calibration_frames} chained frames per camera'}
    match_fit = None
    if model.has_match_head:      # 2b: the match head's Platt scaling and threshold
        other_seed = recipe.train_seeds[0]
        other = ensure_city(recipe, recipe.city_dir(other_seed), seed=other_seed,
                            appearance=city_appearance(recipe, other_seed), progress=progress)
        match_fit = calibrate_match(vloc, vworld, vrecords, other_world=load_world(other),
                                    protocol=protocol, progress=progress)
        calibration |= match_calibration_entry(match_fit, protocol=protocol,
                                               other_seed=other_seed)
        from ciper_ros.runtime.assemble import MATCH_KEYS

        fitted = {k: calibration[k] for k in MATCH_KEYS if k in calibration}
        refit = None
        if fitted:          # 2c: the covariance scales again, under the calibrated mixture
            try:
                refit, *_ = calibration_run(
                    model=candidate, city=recipe.city_dir(protocol.val_seed),
                    index_dir=index_folder(root, 'val', candidate), protocol=protocol,
                    progress=progress, match=fitted)
            except UserError as e:       # too few accepted frames: keep the first fit
                calibration['fitted_on'] += f' (not refitted under the match calibration: {e})'
        if refit is not None:
            calib = refit
            calibration.update({
                'cov_scale': calib['panorama']['cov_scale'],
                'yaw_cov_scale': calib['panorama']['yaw_cov_scale'],
                'forward_cov_scale': calib['forward']['cov_scale'],
                'forward_yaw_cov_scale': calib['forward']['yaw_cov_scale'],
                'fitted_on': calibration['fitted_on'] + ' (refitted with the calibrated '
                                                        'match probability, accepted frames)'})
    del vloc, vworld, vrecords
    stage_s['calibration'] = round(time.perf_counter() - t1, 1)
    shipped = save_checkpoint(root / 'ciper_t_synthetic.pt', model, step=train_info['step'],
                              half=True, extra={**extra, 'calibration': calibration})
    shipped_model = model_from_checkpoint(load_checkpoint(shipped))
    # 3: evaluation on the test city (v2: on every test city, the held-out look too)
    test_city = recipe.city_dir(protocol.test_seed)
    v2 = None
    if model.has_match_head:
        t1 = time.perf_counter()
        v2 = evaluate_cities(recipe, shipped=shipped, model=shipped_model, blob=blob,
                             root=root, protocol=protocol, progress=progress)
        stage_s['test_cities'] = round(time.perf_counter() - t1, 1)
    t1 = time.perf_counter()
    chained = {}
    for name, cam in eval_cameras(protocol).items():
        if v2 is not None and str(protocol.test_seed) in v2['cities']:   # the same run
            chained[name] = v2['cities'][str(protocol.test_seed)]['chained'][name]
            continue
        chained[name] = evaluate_localization(
            model=shipped, city=test_city, index_dir=index_folder(root, 'test', shipped),
            n=protocol.frames, prior_sigma_m=protocol.prior_sigma_m,
            heading_prior_deg=cam['heading_prior_deg'], seed=protocol.frame_seed,
            camera=cam['camera'], top_k=protocol.top_k, progress=progress)
    # the pair modes on the shipped (float16-rounded) weights, as users get them
    pairs = evaluate_pairs(shipped_model, blob, test_city, protocol, progress=progress)
    stage_s['test_city_pairs'] = round(time.perf_counter() - t1, 1)
    data = {'model': str(out_model), 'size_bytes': shipped.stat().st_size,
            'parameters': sum(p.numel() for p in model.parameters()),
            'config': model.config.to_dict(), 'train': train_info,
            'train_config': blob.get('train_config', {}), 'recipe': asdict(recipe),
            'protocol': asdict(protocol), 'calibration': calibration,
            'calibration_fit': calib, 'chained': chained, 'pairs': pairs, 'curve': curve,
            'targets': targets_table(chained), 'notes': list(notes),
            **({'match_calibration_fit': match_fit, 'v2': v2 | {'stage_s': stage_s}}
               if v2 is not None else {}),
            'host': {'machine': platform.machine(), 'cpus': os.cpu_count(),
                     'python': platform.python_version()},
            'finalize_s': round(time.perf_counter() - t0, 1)}
    # 4: ship: the checkpoint, the JSON, the curve plot and the card
    out_model, card = Path(out_model), Path(card)
    with atomic_path(out_model) as tmp:
        Path(tmp).write_bytes(shipped.read_bytes())
    atomic_write_text(card.with_name(CARD_JSON.name),
                      json.dumps(data, indent=1, default=_json_default) + '\n')
    plot_curve(curve, card.with_name(CURVE_PNG.name))
    atomic_write_text(card, render_card(data))
    return data


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def check(*, model: str | os.PathLike = MODEL_FILE, card_json: str | os.PathLike = CARD_JSON,
          city: str | os.PathLike | None = None, index_dir: str | os.PathLike | None = None,
          rel_tol: float = 0.05, share_tol: float = 0.05, progress: bool = True) -> dict:
    """Rerun the card's chained evaluation on its documented seeds and compare.

    Errors must agree within ``rel_tol`` (relative), shares within ``share_tol``
    (absolute). The test city is regenerated from its seed when ``city`` is not given.
    """
    import tempfile

    from ciper_ros.runtime.index import file_sha256
    from ciper_ros.synth.folder import write_city_folder
    from ciper_ros.synth.world import CityConfig

    data = json.loads(Path(card_json).read_text())
    p = Protocol.from_dict(data['protocol'])
    if data.get('size_bytes') and Path(model).stat().st_size != data['size_bytes']:
        raise UserError(f'{model} is not the checkpoint {card_json} describes (size '
                         f'{Path(model).stat().st_size} != {data["size_bytes"]})')
    with tempfile.TemporaryDirectory(prefix='ciper_check_') as tmp:
        if city is None:
            city = Path(tmp) / 'city'
            rc = data['recipe']
            write_city_folder(city, CityConfig(seed=p.test_seed, size_m=rc['city_size_m']),
                              zooms=tuple(rc['zooms']), progress=progress)
        index_dir = Path(index_dir) if index_dir else \
            Path(tmp) / f'index_{file_sha256(model)[:12]}'
        return _compare(data, p, model=model, city=city, index_dir=index_dir,
                        rel_tol=rel_tol, share_tol=share_tol, progress=progress)


def _compare(data: dict, p: Protocol, *, model, city, index_dir, rel_tol: float,
             share_tol: float, progress: bool) -> dict:
    from ciper_ros.experiments.localization_eval import evaluate_localization

    out = {'ok': True, 'cameras': {}}
    for name, cam in eval_cameras(p).items():
        got = evaluate_localization(
            model=model, city=city, index_dir=index_dir, n=p.frames,
            prior_sigma_m=p.prior_sigma_m, heading_prior_deg=cam['heading_prior_deg'],
            seed=p.frame_seed, camera=cam['camera'], top_k=p.top_k, progress=progress)
        rows = []
        for key in CHECKED:
            want, have = data['chained'][name][key], got[key]
            tol = share_tol if key in SHARES else rel_tol * abs(want)
            # nothing localized (no error to take a median of) reproduces as nothing
            ok = bool(abs(have - want) <= tol + 1e-12 or (math.isnan(want)
                                                           and math.isnan(have)))
            out['ok'] &= ok
            rows.append({'metric': key, 'card': want, 'now': have, 'tolerance': tol, 'ok': ok})
        out['cameras'][name] = rows
    return out
