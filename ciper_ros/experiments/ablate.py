"""Query-mode ablation: the paper's free queries against geometry-anchored ones.

Both modes train from the same config, seed and pairs for the same number of steps (or the
same wall-clock budget), then the evaluator scores both on held-out cities. The learning
curves come from each run's periodic validation; the speed-up is how much sooner the
anchored mode reaches the free mode's final validation accuracy:

    speed-up (steps) = free's steps / anchored's first step at or below free's final error

(a lower bound when anchored is already there at its first validation).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import subprocess
import sys

import numpy as np

from ciper_ros.util.atomic import atomic_write_text

MODES = ('anchored', 'free')
CURVE_KEYS = ('val/position_error_m_median', 'val/heading_error_deg_median',
              'val/recall@1')


def synthetic_eval_set(model_config, pairs: dict, cities: list[str], *, n: int,
                       seed: int):
    """Pairs of held-out cities, sized for a model, with the training run's pair options."""
    from ciper_ros.data.synthetic import PairTensors
    from ciper_ros.synth.pairs import CitySource, PairConfig, SyntheticPairs

    cfg = PairConfig.for_model(model_config, **pairs)
    sources = [CitySource.from_folder(c) for c in cities]
    return PairTensors(SyntheticPairs(sources, cfg, length=n, seed=seed)), cfg


def read_curve(metrics_jsonl: Path) -> list[dict]:
    """Read the validation records (step, elapsed_s and the curve metrics) of one run."""
    out = []
    for line in metrics_jsonl.read_text().splitlines():
        rec = json.loads(line)
        if CURVE_KEYS[0] in rec:
            out.append({'step': rec['step'], 'elapsed_s': rec.get('elapsed_s'),
                        **{k.split('/', 1)[1]: rec[k] for k in CURVE_KEYS if k in rec}})
    return out


def speed_up(curves: dict[str, list[dict]], *, fast: str = 'anchored', slow: str = 'free',
             key: str = 'position_error_m_median') -> dict:
    """How much sooner ``fast`` reaches ``slow``'s final validation value of ``key``."""
    if not curves.get(fast) or not curves.get(slow):
        return {}
    target = curves[slow][-1][key]
    hit = next((r for r in curves[fast] if r[key] <= target), None)
    out = {'target': target, 'metric': key, 'slow_steps': curves[slow][-1]['step']}
    if hit is None:
        out.update(reached=False)
        return out
    out.update(reached=True, fast_steps=hit['step'],
               steps_ratio=curves[slow][-1]['step'] / hit['step'],
               lower_bound=hit is curves[fast][0])
    if hit.get('elapsed_s') and curves[slow][-1].get('elapsed_s'):
        out['seconds_ratio'] = curves[slow][-1]['elapsed_s'] / hit['elapsed_s']
    return out


def train_modes(config: str | None, overrides: list[str], out_dir: Path, *,
                modes=MODES, parallel: bool = False) -> dict[str, Path]:
    """Train one run per query mode with ``ciper train``; returns run dirs."""
    return train_runs(config, overrides, out_dir,
                      {m: [f'model_overrides.query_mode={m}'] for m in modes},
                      parallel=parallel)


def train_runs(config: str | None, overrides: list[str], out_dir: Path,
               runs: dict[str, list[str]], *, parallel: bool = False) -> dict[str, Path]:
    """Train one run per name (``ciper train`` in its own process) with its own overrides.

    A run found in ``out_dir`` resumes from its last checkpoint (one that reached
    ``max_steps`` returns at once), so an interrupted suite can be run again.
    """
    dirs = {name: Path(out_dir) / name for name in runs}
    procs = []
    for name, extra in runs.items():
        cmd = [sys.executable, '-m', 'ciper_ros.cli', 'train']
        if config:
            cmd += ['--config', config]
        cmd += [*overrides, *extra, f'out_dir={dirs[name]}']
        dirs[name].mkdir(parents=True, exist_ok=True)
        log = open(dirs[name] / 'train.log', 'a')
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        procs.append((name, p, log))
        if not parallel:
            _wait(name, p, log, dirs[name])
    if parallel:
        for name, p, log in procs:
            _wait(name, p, log, dirs[name])
    return dirs


def _wait(mode: str, p: subprocess.Popen, log, run: Path) -> None:
    rc = p.wait()
    log.close()
    if rc != 0:
        tail = (run / 'train.log').read_text().splitlines()[-5:]
        raise RuntimeError(f'{mode} training failed (exit {rc}): ' + ' | '.join(tail))


def compare(runs: dict[str, Path], *, test_cities: list[str], n: int, seed: int = 12345,
            top_k: int = 5) -> dict:
    """Evaluate each run's last checkpoint on the test cities; curves and speed-up."""
    from ciper_ros.model.build import load_checkpoint, model_from_checkpoint
    from ciper_ros.train.evaluate import evaluate

    result: dict = {'modes': {}, 'test_cities': [str(c) for c in test_cities], 'n': n,
                    'seed': seed}
    curves = {}
    for mode, run in runs.items():
        ckpt = run / 'last.pt'
        blob = load_checkpoint(ckpt)
        tcfg = blob.get('train_config', {})
        model = model_from_checkpoint(blob)
        data, pcfg = synthetic_eval_set(model.config, tcfg.get('pairs', {}), test_cities, n=n,
                                        seed=seed)
        prior = math.radians(pcfg.heading_prior_deg) if pcfg.heading == 'prior' else None
        metrics = evaluate(model, data, top_k=top_k, yaw_prior_range_rad=prior)
        curves[mode] = read_curve(run / 'metrics.jsonl')
        result['modes'][mode] = {
            'steps': int(blob['step']), 'train_seconds': float(blob.get('elapsed_s', 0.0)),
            'parameters': int(sum(v.numel() for v in model.state_dict().values())),
            'eval': metrics, 'curve': curves[mode]}
    result['speed_up'] = speed_up(curves)
    return result


def _cell(sec: dict | None, key: str) -> str:
    if sec is None:
        return ''
    if '%g' in key:
        return ' / '.join(f'{100 * sec[key % t]:.0f} %' for t in (1, 3, 5))
    if key not in sec:
        return ''
    return f'{100 * sec[key]:.1f} %' if 'recall' in key else f'{sec[key]:.2f}'


def markdown(result: dict) -> str:
    rows = [('position error median (m), GT crop', 'gt_tile', 'position_error_m_median'),
            ('position within 1 / 3 / 5 m, GT crop', 'gt_tile', 'position_within_%gm'),
            ('orientation error median (deg), GT crop', 'gt_tile',
             'heading_error_deg_median'),
            ('retrieval recall@1 (city gallery)', 'retrieval', 'recall@1'),
            ('chained position error median (m)', 'chained', 'position_error_m_median')]
    modes = list(result['modes'])
    centre = result['modes'][modes[0]]['eval']['baseline_tile_centre']
    lines = ['| metric | ' + ' | '.join(modes) + ' | tile centre |',
             '| --- |' + ' --- |' * (len(modes) + 1)]
    for label, section, key in rows:
        cells = [_cell(result['modes'][m]['eval'][section], key) for m in modes]
        cells.append(_cell(centre if section == 'gt_tile' else None, key))
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    lines.append('| training steps / seconds | ' + ' | '.join(
        f"{result['modes'][m]['steps']} / {result['modes'][m]['train_seconds']:.0f}"
        for m in modes) + ' | |')
    lines.append('| parameters | ' + ' | '.join(
        f"{result['modes'][m]['parameters'] / 1e6:.2f} M" for m in modes) + ' | |')
    su = result.get('speed_up') or {}
    if su.get('reached'):
        bound = 'at least ' if su['lower_bound'] else ''
        text = (f"anchored reached free's final validation median error "
                f"({su['target']:.2f} m) after {su['fast_steps']} steps: {bound}"
                f"{su['steps_ratio']:.1f}x fewer steps than free's {su['slow_steps']}")
        if 'seconds_ratio' in su:
            text += f" ({bound}{su['seconds_ratio']:.1f}x less training time)"
        lines += ['', text + '.']
    elif su:
        lines += ['', f"anchored did not reach free's final validation median error "
                      f"({su['target']:.2f} m)."]
    return '\n'.join(lines) + '\n'


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for mode, r in result['modes'].items():
        c = r['curve']
        if not c:
            continue
        steps = [x['step'] for x in c]
        axes[0].plot(steps, [x['position_error_m_median'] for x in c], marker='o', label=mode)
        axes[1].plot(steps, [x['heading_error_deg_median'] for x in c], marker='o',
                     label=mode)
    first = next(iter(result['modes'].values()))['eval']
    axes[0].axhline(first['baseline_tile_centre']['position_error_m_median'], color='grey',
                    ls='--', label='tile centre')
    axes[1].axhline(90.0, color='grey', ls='--', label='chance')
    axes[0].set(xlabel='training step', ylabel='median position error (m)',
                title='validation: position (GT crop)')
    axes[1].set(xlabel='training step', ylabel='median orientation error (deg)',
                title='validation: heading (GT crop)')
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + '.partial.png')
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(result: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {'json': out_dir / 'query_modes.json', 'md': out_dir / 'query_modes.md',
             'png': out_dir / 'query_modes.png'}
    atomic_write_text(paths['json'], json.dumps(result, indent=1, default=_jsonable) + '\n')
    atomic_write_text(paths['md'], markdown(result))
    plot(result, paths['png'])
    return paths


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f'not JSON serialisable: {type(x)}')
