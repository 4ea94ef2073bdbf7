"""ONNX export of the three graphs the runtime runs: ground encoder, aerial encoder, decoder.

Static shapes (batch 1 for the encoders, ``decoder_batch`` candidates for the decoder: by
default the Localizer's ``top_k``; the backends pad fewer and split more into runs),
opset 17 (GridSample needs 16), TorchScript-based exporter (needs no onnxscript). Each graph
is run in onnxruntime and compared with torch (the ground encoder also on an image with
unseen columns, the decoder with and without a heading prior, v2's on random polar rays
whose score volume has distinct peaks: see :func:`_distinct_peaks`); the export is refused
when the relative error (max |onnx - torch| / max |torch|) of any output reaches 1e-4 or a
graph holds an operator TensorRT does not implement.

Graph interfaces: the names depend on the model and are part of the format. ``export.json``
records them (``interface``); the backends read them from there and refuse an export whose
interface is not the model's (an export without one is v1: it predates v2).

``v1`` (ViT encoders; query mode single, free or anchored):

* ``ground_encoder.onnx``: image (1, 3, Hg, Wg) in [0, 1] -> pose (1, D), tokens (1, Ng, D),
  desc (1, E)
* ``aerial_encoder.onnx``: image (1, 3, S, S) -> pose, tokens (1, Na, D), desc
* ``pose_decoder.onnx``: g_pose (K, D), g_tokens (K, Ng, D), a_tokens (K, Na, D),
  yaw_prior (K,), yaw_prior_range (1,) -> pred_logits (K, Q), pred_xy (K, Q, 2),
  pred_yaw (K, Q, 2)

``v2`` (hybrid encoders with stride-4 fine features; query mode fine):

* ``ground_encoder.onnx``: image (1, 3, Hg, Wg) -> pose (1, D), tokens (1, Ng, D), desc (1, E),
  fine (1, Cf, Hg / 4, Wg / 4), col_mask (1, Wg / 4) (seen fine columns: unseen image
  columns are exactly 0)
* ``aerial_encoder.onnx``: image (1, 3, S, S) -> pose, tokens, desc, fine (1, Cf, S/4, S/4),
  col_mask (1, S / 4), polar (1, P, A, C) (the crop's polar rays, cached with the encoding)
* ``pose_decoder.onnx``: g_pose (K, D), g_fine, g_col_mask, g_desc (K, E), a_tokens,
  a_polar (K, P, A, C), a_desc, yaw_prior (K,), yaw_prior_range (1,) -> pred_logits (K, Q),
  pred_xy (K, Q, 2), pred_yaw (K, Q, 2), match_logit (K,)

A ``yaw_prior_range`` of 4 rad or more means no heading prior. Inputs a graph does not use
are pruned by the exporter (the backends feed only those a graph has).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ciper_ros.model.config import ModelConfig
from ciper_ros.util.atomic import atomic_path, atomic_write_text
from ciper_ros.util.errors import UserError

OPSET = 17
MAX_REL_ERROR = 1e-4
NO_PRIOR_RANGE = 4.0          # > pi + one heading bin: every heading allowed
GRAPHS = ('ground_encoder', 'aerial_encoder', 'pose_decoder')
_V1_ENC = ('pose', 'tokens', 'desc')
_V2_ENC = ('pose', 'tokens', 'desc', 'fine', 'col_mask')
_PRIOR = ('yaw_prior', 'yaw_prior_range')
_V1_OUT = ('pred_logits', 'pred_xy', 'pred_yaw')
# graph -> {'inputs': names, 'outputs': names}, per interface version
INTERFACES = {
    'v1': {'ground_encoder': {'inputs': ('image',), 'outputs': _V1_ENC},
           'aerial_encoder': {'inputs': ('image',), 'outputs': _V1_ENC},
           'pose_decoder': {'inputs': ('g_pose', 'g_tokens', 'a_tokens', *_PRIOR),
                            'outputs': _V1_OUT}},
    'v2': {'ground_encoder': {'inputs': ('image',), 'outputs': _V2_ENC},
           'aerial_encoder': {'inputs': ('image',), 'outputs': (*_V2_ENC, 'polar')},
           'pose_decoder': {'inputs': ('g_pose', 'g_fine', 'g_col_mask', 'g_desc', 'a_tokens',
                                       'a_polar', 'a_desc', *_PRIOR),
                            'outputs': (*_V1_OUT, 'match_logit')}},
}
_KIND = {'v1': 'ViT encoders', 'v2': 'hybrid encoders, fine score volume'}
# operators TensorRT's ONNX parser does not implement (or not for these uses)
TENSORRT_UNSUPPORTED = {'DFT', 'STFT', 'Loop', 'Scan', 'SequenceConstruct', 'SequenceAt',
                        'Unique', 'StringNormalizer', 'RandomNormalLike', 'Multinomial'}


def interface_version(config: ModelConfig) -> str:
    """Name the graph interface a model exports to: 'v2' for fine models, else 'v1'."""
    return 'v2' if config.query_mode == 'fine' else 'v1'


def export_interface(report: dict) -> tuple[str, dict]:
    """Read (version, {graph: {'inputs', 'outputs'}}) from an ``export.json`` report.

    Reports written before v2 carry no interface: they are v1.
    """
    iface = report.get('interface')
    if iface is None:
        return 'v1', {g: {k: list(v) for k, v in io.items()}
                      for g, io in INTERFACES['v1'].items()}
    try:
        return str(iface['version']), {g: {side: list(iface['graphs'][g][side])
                                           for side in ('inputs', 'outputs')}
                                       for g in GRAPHS}
    except (KeyError, TypeError):
        raise UserError(f'export.json has a malformed interface {iface!r}: re-export it '
                        'with `ciper export`') from None


def check_interface(report: dict, config: ModelConfig, where: str | os.PathLike) -> dict:
    """Return the export's graph names; UserError when they are not the model's interface."""
    version, graphs = export_interface(report)
    want = interface_version(config)
    if version != want:
        raise UserError(f'{where} is a {version} export ({_KIND.get(version, "unknown")}, '
                        f'model {report.get("model")!r}) but model {config.name!r} needs the '
                        f'{want} interface ({_KIND[want]}): re-export it with `ciper export`')
    for g in GRAPHS:
        for side in ('inputs', 'outputs'):
            if list(graphs[g][side]) != list(INTERFACES[want][g][side]):
                raise UserError(f'{where}: {g} {side} {list(graphs[g][side])} are not the '
                                f'{want} interface {list(INTERFACES[want][g][side])}: '
                                're-export it with `ciper export`')
    return graphs


def token_grids(config: ModelConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """Token grids (h, w) of the ground and aerial encoders (hybrid ones are at stride 16)."""
    p = 16 if config.trunk != 'none' else config.patch
    return ((config.ground_size[0] // p, config.ground_size[1] // p),
            (config.aerial_size[0] // p, config.aerial_size[1] // p))


class _Encoder(torch.nn.Module):
    def __init__(self, model, which: str, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.which, self.outputs = model, which, outputs

    def forward(self, image: torch.Tensor):
        enc = (self.model.encode_ground if self.which == 'ground'
               else self.model.encode_aerial)(image)
        return tuple(enc[k] for k in self.outputs)


def split_encodings(inputs: tuple[str, ...], tensors) -> tuple[dict, dict]:
    """Split decoder inputs by name (g_pose, a_tokens, ...) into ground and aerial dicts."""
    g, a = {}, {}
    for name, t in zip(inputs, tensors, strict=True):
        if name.startswith(('g_', 'a_')):
            (g if name[0] == 'g' else a)[name[2:]] = t
    return g, a


class _Decoder(torch.nn.Module):
    def __init__(self, model, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs
        self.g_grid, self.a_grid = token_grids(model.config)

    def forward(self, *tensors: torch.Tensor):
        g, a = split_encodings(self.inputs, tensors)
        named = dict(zip(self.inputs, tensors, strict=True))
        out = self.model.decode({**g, 'grid': self.g_grid}, {**a, 'grid': self.a_grid},
                                yaw_prior=named['yaw_prior'],
                                yaw_prior_range=named['yaw_prior_range'])
        return tuple(out[k] for k in self.outputs)


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs, outputs) -> None:
    import warnings

    with atomic_path(path, suffix='.onnx') as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')           # tracer / deprecation chatter
        torch.onnx.export(module, args, str(tmp), opset_version=OPSET, input_names=list(inputs),
                          output_names=list(outputs), dynamo=False, do_constant_folding=True)


def _check(path: Path, feeds: dict, reference: tuple, outputs: tuple[str, ...]) -> dict:
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(path))
    ops = sorted({n.op_type for n in graph.graph.node})
    bad = sorted(set(ops) & TENSORRT_UNSUPPORTED)
    if bad:
        raise RuntimeError(f'{path.name} uses operators TensorRT lacks: {bad}')
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got_names = [x.name for x in sess.get_outputs()]
    if got_names != list(outputs):
        raise RuntimeError(f'{path.name} has outputs {got_names}, expected {list(outputs)}')
    names = {i.name for i in sess.get_inputs()}     # unused inputs are pruned by the export
    got = sess.run(None, {k: v.detach().cpu().numpy() for k, v in feeds.items() if k in names})
    errors = {}
    for name, o, r in zip(got_names, got, reference, strict=True):
        r = r.detach().cpu().numpy()
        errors[name] = float(np.abs(o - r).max() / max(np.abs(r).max(), 1e-12))
    worst = max(errors, key=errors.get)
    if not errors[worst] < MAX_REL_ERROR:
        raise RuntimeError(f'{path.name}: onnxruntime differs from torch by '
                           f'{errors[worst]:.2e} on {worst} (relative; limit '
                           f'{MAX_REL_ERROR:g})')
    return {'ops': ops, 'relative_error': errors}


def _peaks_stable(model, inputs: tuple[str, ...], feeds: dict, *, eps: float = 1e-5,
                  draws: int = 4) -> torch.Tensor:
    """(K,) rows whose chosen peaks survive perturbing the volume by ``eps`` of its scale.

    With and without the heading prior; a row that fails has near-tied peaks, which float
    rounding (torch against onnxruntime) can pick in another order.
    """
    from ciper_ros.model.volume import NEG

    dec = model.pose_decoder
    g, a = split_encodings(inputs, [feeds[n] for n in inputs])
    gen = torch.Generator().manual_seed(1)
    ok = torch.ones(len(feeds['yaw_prior']), dtype=torch.bool)
    for rng in (feeds['yaw_prior_range'], torch.tensor([NO_PRIOR_RANGE])):
        v = dec.volume(g, a, yaw_prior=feeds['yaw_prior'], yaw_prior_range=rng)['volume']
        live = v > NEG / 2                                   # allowed headings
        scale = v.abs().masked_fill(~live, 0).amax()
        _, cells = dec.volume.peaks(v, dec.num_queries)
        for _ in range(draws):
            u = (torch.rand(v.shape, generator=gen) * 2 - 1) * eps * scale
            ok &= (dec.volume.peaks(torch.where(live, v + u, v),
                                    dec.num_queries)[1] == cells).all(1)
    return ok


def _distinct_peaks(model, inputs: tuple[str, ...], feeds: dict, gen: torch.Generator,
                    tries: int = 20) -> torch.Tensor:
    """Polar rays (K, P, A, C) for the decoder check: random unit features, distinct peaks.

    The untrained ciper_t2's real rays give a volume whose top 32 peaks lie within float
    rounding of each other (measured: a 1e-6 relative perturbation changes the chosen peaks
    in 20 of 27 rows without a prior), so torch and onnxruntime may read other peaks and
    the comparison would test nothing but the tie; random rays spread the volume (1e-5
    changes 2 of 18 rows), and rows that still have near ties are drawn again.
    """
    polar = feeds['a_polar']
    rays = torch.nn.functional.normalize(torch.randn(polar.shape, generator=gen), dim=-1)
    for _ in range(tries):
        bad = ~_peaks_stable(model, inputs, dict(feeds, a_polar=rays))
        if not bad.any():
            break
        rays[bad] = torch.nn.functional.normalize(
            torch.randn((int(bad.sum()), *polar.shape[1:]), generator=gen), dim=-1)
    return rays


@torch.no_grad()
def export_onnx(model_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                decoder_batch: int | None = None, seed: int = 0) -> dict:
    """Write the three graphs and ``export.json`` into ``out_dir``; returns the report.

    ``decoder_batch``: candidates per decoder run, default the Localizer's ``top_k`` (the
    candidates it decodes per frame with a prior).
    """
    from ciper_ros.model.build import load_model
    from ciper_ros.runtime.index import file_sha256
    from ciper_ros.runtime.localizer import LocalizerConfig

    if decoder_batch is None:
        decoder_batch = LocalizerConfig().top_k
    if not (isinstance(decoder_batch, int) and decoder_batch >= 1):
        raise UserError(f'decoder_batch must be a positive integer, got {decoder_batch!r}')

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(model_path).eval()
    mc = model.config
    version = interface_version(mc)
    iface = INTERFACES[version]
    gen = torch.Generator().manual_seed(seed)
    ground = torch.rand(1, 3, *mc.ground_size, generator=gen)
    aerial = torch.rand(1, 3, *mc.aerial_size, generator=gen)
    report: dict = {'model_sha256': file_sha256(model_path), 'model': mc.name,
                    'opset': OPSET, 'decoder_batch': decoder_batch,
                    'interface': {'version': version,
                                  'graphs': {g: {k: list(v) for k, v in io.items()}
                                             for g, io in iface.items()}},
                    'graphs': {}}
    for which, image in (('ground', ground), ('aerial', aerial)):
        names = iface[f'{which}_encoder']['outputs']
        mod = _Encoder(model, which, names).eval()
        path = out / f'{which}_encoder.onnx'
        _export(mod, (image,), path, ['image'], names)
        entry = {'inputs': {'image': list(image.shape)},
                 **_check(path, {'image': image}, mod(image), names)}
        if which == 'ground':     # a forward camera's panorama: unseen columns are 0
            part = image.clone()
            part[..., :mc.ground_size[1] // 3] = 0
            entry['relative_error_unseen'] = _check(path, {'image': part}, mod(part),
                                                    names)['relative_error']
        report['graphs'][path.name] = entry
    # decoder inputs: real encodings of K different random images (v2: random polar rays,
    # see _distinct_peaks), a heading prior
    k = decoder_batch
    g = model.encode_ground(torch.rand(k, 3, *mc.ground_size, generator=gen))
    a = model.encode_aerial(torch.rand(k, 3, *mc.aerial_size, generator=gen))
    inputs, outputs = iface['pose_decoder']['inputs'], iface['pose_decoder']['outputs']
    feeds = {n: (g if n[0] == 'g' else a)[n[2:]] for n in inputs if n[:2] in ('g_', 'a_')}
    feeds.update(yaw_prior=torch.rand(k, generator=gen) * 6 - 3,
                 yaw_prior_range=torch.tensor([math.radians(30.0)]))
    if 'a_polar' in feeds:
        feeds['a_polar'] = _distinct_peaks(model, inputs, feeds, gen)
    feeds = {n: feeds[n] for n in inputs}
    dec = _Decoder(model, inputs, outputs).eval()
    path = out / 'pose_decoder.onnx'
    _export(dec, tuple(feeds.values()), path, inputs, outputs)
    checked = _check(path, feeds, dec(*feeds.values()), outputs)
    no_prior = dict(feeds, yaw_prior_range=torch.tensor([NO_PRIOR_RANGE]))
    checked_np = _check(path, no_prior, dec(*no_prior.values()), outputs)
    report['graphs'][path.name] = {
        'inputs': {n: list(v.shape) for n, v in feeds.items()}, 'ops': checked['ops'],
        'relative_error': checked['relative_error'],
        'relative_error_no_prior': checked_np['relative_error']}
    if 'a_polar' in feeds:
        report['graphs'][path.name]['a_polar'] = 'random unit rays, distinct peaks'
    atomic_write_text(out / 'export.json', json.dumps(report, indent=1) + '\n')
    return report
