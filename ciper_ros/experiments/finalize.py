"""The default model's last stages: calibrate, evaluate, ship, write the model card.

``ciper model finalize`` (and ``make model`` after training) turns the recipe's training
state into ``models/ciper_t_synthetic.pt`` and ``models/MODEL_CARD.md``:

1. the weights as float16 (``candidate.pt`` in the work folder);
2. covariance calibration on the validation city (seed 500): chained frames with a GNSS
   prior, once with the panorama and once with the forward camera, each fitted with
   :func:`~ciper_ros.runtime.calibration.fit_covariance_scales`; the scales go into the
   checkpoint (``calibration``), which the runtime uses unless given a file;
3. evaluation on the test city (seed 0) with the :data:`PROTOCOL`: the evaluator's
   GT-crop and gallery modes on pairs (panorama; forward-camera footprints), and the chained
   mode through the runtime for both cameras;
4. ``models/model_card.json`` (every number, the protocol, the curve) and the card's
   markdown, which shows the issue's targets next to what was measured.

:func:`check` reruns the chained evaluation with the card's protocol and compares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import math
import os
from pathlib import Path
import platform
import time

from ciper_ros.experiments.recipe import ModelRecipe, TEST_SEED, VAL_SEED, validation_curve
from ciper_ros.metrics.pose import upgrade_metric_names
from ciper_ros.util.atomic import atomic_path, atomic_write_text
from ciper_ros.util.errors import UserError

MODEL_FILE = Path('models') / 'ciper_t_synthetic.pt'
CARD_FILE = Path('models') / 'MODEL_CARD.md'
CARD_JSON = Path('models') / 'model_card.json'
CURVE_PNG = Path('models') / 'training_curve.png'
# (metric, target, how compared); chained mode, test city, GNSS prior sigma 10 m
TARGETS = {
    'panorama': [('position_error_m_median', 0.5, '<='), ('position_error_m_p95', 2.0, '<='),
                 ('heading_error_deg_median', 1.0, '<='), ('truth_in_gated_tiles', 0.95, '>='),
                 ('nees_xy_mean', (1.5, 2.5), 'in'), ('coverage_95', (0.90, 0.97), 'in')],
    'forward': [('position_error_m_median', 2.0, '<='), ('position_error_m_p95', 8.0, '<='),
                ('heading_error_deg_median', 2.0, '<='), ('nees_xy_mean', (1.5, 2.5), 'in'),
                ('coverage_95', (0.90, 0.97), 'in')],
}
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


PROTOCOL = Protocol()


def _cameras(protocol: Protocol) -> dict[str, dict]:
    return {'panorama': {'camera': 'native', 'heading_prior_deg': None},
            'forward': {'camera': 'forward',
                        'heading_prior_deg': protocol.forward_heading_prior_deg}}


def calibrate_on_city(*, model: Path, city: Path, index_dir: Path, protocol: Protocol,
                      progress: bool = True) -> dict:
    """Fit the covariance scales (panorama and forward camera) on a validation city."""
    from ciper_ros.experiments.localization_eval import (
        chained_frames,
        chained_records,
        open_city_localizer,
    )
    from ciper_ros.runtime.calibration import fit_covariance_scales, uncalibrated

    loc, world = open_city_localizer(model=model, city=city, index_dir=index_dir,
                                     top_k=protocol.top_k, uncalibrated=True,
                                     progress=progress)
    out = {}
    for name, cam in _cameras(protocol).items():
        frames = chained_frames(world=world, plane=loc.index.plane,
                                crop_side_m=loc.index.crop_side_m,
                                model_config=loc.model.config, n=protocol.calibration_frames,
                                prior_sigma_m=protocol.prior_sigma_m,
                                heading_prior_deg=cam['heading_prior_deg'],
                                seed=protocol.calibration_seed, camera=cam['camera'])
        records = chained_records(uncalibrated(loc), frames,
                                  total=protocol.calibration_frames,
                                  desc=f'calibrate ({name})', progress=progress)
        out[name] = fit_covariance_scales(records)
    return out


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
    calib = calibrate_on_city(model=candidate, city=recipe.city_dir(protocol.val_seed),
                              index_dir=_index_dir(root, 'val', candidate), protocol=protocol,
                              progress=progress)
    calibration = {'cov_scale': calib['panorama']['cov_scale'],
                   'yaw_cov_scale': calib['panorama']['yaw_cov_scale'],
                   'forward_cov_scale': calib['forward']['cov_scale'],
                   'forward_yaw_cov_scale': calib['forward']['yaw_cov_scale'],
                   'fitted_on': f'validation city seed {protocol.val_seed}, '
                                f'{protocol.calibration_frames} chained frames per camera'}
    shipped = save_checkpoint(root / 'ciper_t_synthetic.pt', model, step=train_info['step'],
                              half=True, extra={**extra, 'calibration': calibration})
    # 3: evaluation on the test city
    test_city = recipe.city_dir(protocol.test_seed)
    chained = {}
    for name, cam in _cameras(protocol).items():
        chained[name] = evaluate_localization(
            model=shipped, city=test_city, index_dir=_index_dir(root, 'test', shipped),
            n=protocol.frames, prior_sigma_m=protocol.prior_sigma_m,
            heading_prior_deg=cam['heading_prior_deg'], seed=protocol.frame_seed,
            camera=cam['camera'], top_k=protocol.top_k, progress=progress)
    # the pair modes on the shipped (float16-rounded) weights, as users get them
    pairs = evaluate_pairs(model_from_checkpoint(load_checkpoint(shipped)), blob, test_city,
                           protocol, progress=progress)
    data = {'model': str(out_model), 'size_bytes': shipped.stat().st_size,
            'parameters': sum(p.numel() for p in model.parameters()),
            'config': model.config.to_dict(), 'train': train_info,
            'train_config': blob.get('train_config', {}), 'recipe': asdict(recipe),
            'protocol': asdict(protocol), 'calibration': calibration,
            'calibration_fit': calib, 'chained': chained, 'pairs': pairs, 'curve': curve,
            'targets': targets_table(chained), 'notes': list(notes),
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


def _index_dir(root: Path, name: str, model: Path) -> Path:
    """Name a tile index folder per model file (an index is tied to its model's bytes)."""
    from ciper_ros.runtime.index import file_sha256

    return root / f'index_{name}_{file_sha256(model)[:12]}'


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def evaluate_pairs(model, blob: dict, city: Path, protocol: Protocol, *,
                   progress: bool = True) -> dict:
    """Run the evaluator's GT-crop, gallery and tile-centre modes on the test city's pairs.

    ``panorama``: the training task (heading unknown); ``forward``: every pair cut to a
    forward camera's footprint, with the heading prior training gave those.
    """
    from ciper_ros.experiments.ablate import synthetic_eval_set
    from ciper_ros.model.config import ModelConfig
    from ciper_ros.train.evaluate import evaluate

    pairs = dict((blob.get('train_config') or {}).get('pairs') or {})
    pairs.pop('negative_crops', None)
    out = {}
    for name, over, n in (('panorama', {'limited_fov_prob': 0.0}, protocol.pairs),
                          ('forward', {'limited_fov_prob': 1.0}, protocol.pairs),
                          ('ablation', {}, protocol.ablation_pairs)):
        data, pcfg = synthetic_eval_set(ModelConfig.from_dict(blob['config']),
                                        {**pairs, **over}, [str(city)],
                                        n=n, seed=protocol.frame_seed)
        # the ablation's rule (run_suite) uses a heading prior only for 'prior' tasks
        prior = math.radians(pcfg.heading_prior_deg) if name == 'forward' or \
            pcfg.heading == 'prior' else None
        out[name] = evaluate(model, data, yaw_prior_range_rad=prior, progress=progress)
    return out


def targets_table(chained: dict) -> list[dict]:
    """Each issue target next to the measured value (chained mode, test city)."""
    rows = []
    for cam, items in TARGETS.items():
        for key, target, how in items:
            v = chained.get(cam, {}).get(key, math.nan)
            if how == '<=':
                met = v <= target
            elif how == '>=':
                met = v >= target
            else:
                met = target[0] <= v <= target[1]
            rows.append({'camera': cam, 'metric': key, 'target': target, 'how': how,
                         'value': v, 'met': bool(met)})
    return rows


def plot_curve(curve: list[dict], path: Path) -> None:
    """Plot the validation metric against training hours (the gap to the targets)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    pts = [(r['elapsed_s'] / 3600.0, r['val/position_error_m_median'],
            r.get('val/heading_error_deg_median', math.nan))
           for r in curve if 'val/position_error_m_median' in r and r.get('elapsed_s')]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    if pts:
        h, e, y = zip(*pts, strict=True)
        ax.plot(h, e, 'o-', color='tab:blue', label='position error median (m)')
        ax2 = ax.twinx()
        ax2.plot(h, y, 's--', color='tab:orange', label='heading error median (deg)')
        ax2.set_ylabel('heading error median (deg)', color='tab:orange')
        ax2.set_ylim(bottom=0)
    ax.axhline(0.5, color='tab:blue', lw=0.8, ls=':', label='target 0.5 m (chained)')
    ax.set_xlabel('training time on a 2-core CPU (h)')
    ax.set_ylabel('position error median (m)', color='tab:blue')
    ax.set_ylim(bottom=0)
    ax.set_title('validation city 500, ground-truth crop, every 2000 steps', fontsize=9)
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png')
    plt.close(fig)


def _fmt(v, digits: int = 2, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '-'
    return f'{100 * v:.1f} %' if pct else f'{v:.{digits}f}'


SHARES = ('position_within_0.5m', 'position_within_1m', 'position_within_2m',
          'truth_in_gated_tiles', 'truth_in_decoded_candidates', 'chosen_tile_correct',
          'coverage_95', 'localized_fraction')


def render_card(d: dict) -> str:
    """Render the model card's markdown from :func:`finalize`'s data."""
    p, tr, mc = d['protocol'], d['train'], d['config']
    tc = d.get('train_config') or {}
    rc = d['recipe']
    met = [r for r in d['targets'] if r['met']]
    lines = [
        '# ciper_t_synthetic.pt: the default model',
        '',
        f"**Status: trained {tr['elapsed_s'] / 3600:.2f} h on a 2-core CPU (step {tr['step']} "
        f"of {tc.get('max_steps', '?')}). {len(met)} of {len(d['targets'])} targets met; "
        'the curve below shows the gap. Generated by `ciper model finalize`; every number is '
        'in `models/model_card.json`.**',
        '',
        'One model for both ground cameras: a 360-degree panorama, and a forward pinhole '
        'camera (about 90 degrees, like KITTI or Ford) whose image the runtime resamples into '
        "the panorama's footprint using CameraInfo intrinsics.",
        '',
        '| | |', '| --- | --- |',
        f"| architecture | `{mc.get('name', 'ciper_t')}`: ViT encoders (dim "
        f"{mc.get('dim')}, depth {mc.get('depth')}, patch {mc.get('patch')}), two-way pose "
        f"decoder, {mc.get('query_mode')} queries |",
        f"| parameters | {d['parameters'] / 1e6:.2f} M (float16 file: "
        f"{d['size_bytes'] / 1e6:.1f} MB; `load_model` restores float32) |",
        f"| ground input | panorama {mc['ground_size'][1]} x {mc['ground_size'][0]} "
        '(equirectangular, centre column = heading); a forward camera is resampled into it |',
        f"| aerial input | {mc['aerial_size'][0]} x {mc['aerial_size'][1]} px over "
        f"{tc.get('pairs', {}).get('aerial_side_m', 64.0):g} m, north-up |",
        f"| training data | {rc['n_train_cities']} synthetic cities (seeds 1000-"
        f"{999 + rc['n_train_cities']}), {rc['city_size_m']:g} m, zoom "
        f"{'/'.join(str(z) for z in rc['zooms'])}; {rc['renders_per_city']} panoramas per "
        'city pre-rendered at heading 0, rolled to any heading, tile offset drawn at crop '
        f"time; {100 * tc.get('pairs', {}).get('limited_fov_prob', 0):.0f} % cut to a "
        'forward-camera footprint with a +-10 deg heading prior |',
        f"| training | {tr['step']} steps x batch {tc.get('batch_size')}, AdamW lr "
        f"{tc.get('lr')}, warm-up {tc.get('warmup_steps')}, cosine over "
        f"{tc.get('max_steps')} steps; {tr['elapsed_s'] / 3600:.2f} h on "
        f"{d['host']['cpus']} CPU cores ({d['host']['machine']}); negative crops "
        f"{'on' if tc.get('pairs', {}).get('negative_crops') else 'off'} |",
        f"| calibration | {d['calibration']['fitted_on']}: position x "
        f"{d['calibration']['cov_scale']:.3g}, heading x "
        f"{d['calibration']['yaw_cov_scale']:.3g} (panorama); x "
        f"{d['calibration']['forward_cov_scale']:.3g} / "
        f"{d['calibration']['forward_yaw_cov_scale']:.3g} (forward); fitted so the 95 % "
        'ellipse holds 95 % of validation errors; stored in the checkpoint |',
        f"| evaluation | test city seed {p['test_seed']} ({rc['city_size_m']:g} m), "
        f"{p['frames']} chained frames per camera (seed {p['frame_seed']}), GNSS prior sigma "
        f"{p['prior_sigma_m']:g} m, top {p['top_k']} candidates; {p['pairs']} pairs for the "
        'GT-crop mode |',
        '',
        '## Targets (chained mode: gated candidates from the GNSS prior, then pose; per frame)',
        '',
        '| camera | metric | target | measured | met |', '| --- | --- | --- | --- | --- |']
    for r in d['targets']:
        t = r['target']
        tgt = f'{t[0]:g}-{t[1]:g}' if isinstance(t, (list, tuple)) else f"{r['how']} {t:g}"
        pct = r['metric'] in SHARES
        lines.append(f"| {r['camera']} | {r['metric']} | {tgt} | "
                     f"{_fmt(r['value'], pct=pct)} | {'yes' if r['met'] else 'no'} |")
    lines += ['', '## Chained mode (test city, through the runtime)', '',
              '| metric | panorama | forward 90 deg (+-10 deg heading prior) |',
              '| --- | --- | --- |']
    ch = d['chained']
    for key in ('position_error_m_median', 'position_error_m_p95', 'position_within_0.5m',
                'position_within_1m', 'position_within_2m', 'heading_error_deg_median',
                'heading_error_deg_p95', 'truth_in_gated_tiles', 'gated_tiles_median',
                'truth_in_decoded_candidates', 'chosen_tile_correct', 'nees_xy_mean',
                'coverage_95', 'localized_fraction', 'prior_error_m_median',
                'ms_per_frame_median'):
        pct = key in SHARES
        lines.append(f'| {key} | ' + ' | '.join(
            _fmt(ch[c].get(key), pct=pct) for c in ('panorama', 'forward')) + ' |')
    lines += ['', '## GT-crop and gallery modes (the evaluator on test-city pairs)', '',
              "GT crop: pose on the true aerial crop (the papers' protocol). Gallery: the "
              "pair's own crops of the city ranked by descriptor, top 5 decoded.", '',
              '| metric | panorama | forward footprint |', '| --- | --- | --- |']
    pr = d['pairs']
    for section, key, pct in (
            ('gt_tile', 'position_error_m_median', False),
            ('gt_tile', 'position_error_m_mean', False),
            ('gt_tile', 'position_within_1m', True), ('gt_tile', 'position_within_3m', True),
            ('gt_tile', 'heading_error_deg_median', False),
            ('gt_tile', 'heading_within_1deg', True),
            ('retrieval', 'recall@1', True), ('retrieval', 'recall@5', True),
            ('chained', 'position_error_m_median', False),
            ('baseline_tile_centre', 'position_error_m_median', False)):
        lines.append(f'| {section}: {key} | ' + ' | '.join(
            _fmt(pr[c].get(section, {}).get(key), pct=pct)
            for c in ('panorama', 'forward')) + ' |')
    ab = pr.get('ablation')
    if ab:
        g = ab['gt_tile']
        lines += ['', "## On the ablation's pairs", '',
                  f"The {p.get('ablation_pairs', 150)} pairs `bench/ablation.py` scores its "
                  'variants on (test city, seed '
                  f"{p['frame_seed']}, the training pair options): GT crop median "
                  f"{_fmt(g.get('position_error_m_median'))} m, within 1 m "
                  f"{_fmt(g.get('position_within_1m'), pct=True)}, heading median "
                  f"{_fmt(g.get('heading_error_deg_median'), 1)} deg; retrieval "
                  f"recall@1 {_fmt(ab['retrieval'].get('recall@1'), pct=True)}; see "
                  '[docs/ablations.md](../docs/ablations.md).']
    lines += ['', '## Training curve', '', '![validation curve](training_curve.png)', '',
              '| step | hours | position median (m) | heading median (deg) |',
              '| --- | --- | --- | --- |']
    for r in d['curve']:
        if 'val/position_error_m_median' in r:
            lines.append(f"| {r['step']} | {r.get('elapsed_s', 0) / 3600:.2f} | "
                         f"{r['val/position_error_m_median']:.2f} | "
                         f"{r.get('val/heading_error_deg_median', math.nan):.1f} |")
    if d.get('notes'):
        lines += ['', '## Training history', ''] + [f'- {n}' for n in d['notes']]
    lines += ['', '## Reproduce', '', '```bash',
              'make model MODEL_MINUTES=120   # cities, render bank, training (resumes), '
              'then ciper model finalize',
              'ciper model check              # reruns the chained evaluation above and '
              'compares (5 %)', '```', '',
              'Chained metrics by hand: `ciper eval --model models/ciper_t_synthetic.pt '
              f"--city runs/default_model/cities/{p['test_seed']} --index /tmp/idx "
              f"--gnss-sigma-m {p['prior_sigma_m']:g} --n {p['frames']} "
              f"--seed {p['frame_seed']} [--camera forward]`.", '',
              KNOWN_LIMITS]
    return '\n'.join(lines) + '\n'


KNOWN_LIMITS = """## Known limits

- Trained and judged on synthetic cities only. Accuracy on real imagery (VIGOR, KITTI,
  Ford, a fleet) is unmeasured here: the datasets cannot be downloaded on this machine.
  Fine-tune on your own data (`ciper train --dataset ...`) before trusting it.
- The forward camera is assumed level. Lens distortion is not modelled, and the image is
  resampled into the panorama's footprint from CameraInfo intrinsics.
- Per frame only: no tracking. Wrong-tile frames make the heavy tail of the error. The
  calibrated covariance is sized so that its 95 % ellipse holds 95 % of the validation
  errors, so typical frames get ellipses larger than their errors.
- Trained for the hours stated above on a 2-core CPU; the validation curve was still
  falling when training stopped. More hours (`make model`, resumable) or a GPU are the way
  to the targets.
"""


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
    p = Protocol(**data['protocol'])
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
    for name, cam in _cameras(p).items():
        got = evaluate_localization(
            model=model, city=city, index_dir=index_dir, n=p.frames,
            prior_sigma_m=p.prior_sigma_m, heading_prior_deg=cam['heading_prior_deg'],
            seed=p.frame_seed, camera=cam['camera'], top_k=p.top_k, progress=progress)
        rows = []
        for key in CHECKED:
            want, have = data['chained'][name][key], got[key]
            tol = share_tol if key in SHARES else rel_tol * abs(want)
            ok = bool(abs(have - want) <= tol + 1e-12)
            out['ok'] &= ok
            rows.append({'metric': key, 'card': want, 'now': have, 'tolerance': tol, 'ok': ok})
        out['cameras'][name] = rows
    return out
