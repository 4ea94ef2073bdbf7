"""ONNX export of the three graphs the runtime runs: ground encoder, aerial encoder, decoder.

Static shapes (batch 1 for the encoders, ``decoder_batch`` candidates for the decoder: by
default the Localizer's ``top_k``; the backends pad fewer and split more into runs),
opset 17, TorchScript-based exporter (needs no onnxscript). Each graph is run once in
onnxruntime and compared with torch; the export is refused when the relative error
(max |onnx - torch| / max |torch|) reaches 1e-4 or a graph holds an operator TensorRT does
not implement.

Graph interfaces (names are part of the format, checked by the backends):

* ``ground_encoder.onnx``: image (1, 3, Hg, Wg) in [0, 1] -> pose (1, D), tokens (1, Ng, D),
  desc (1, E)
* ``aerial_encoder.onnx``: image (1, 3, S, S) -> pose, tokens (1, Na, D), desc
* ``pose_decoder.onnx``: g_pose (K, D), g_tokens (K, Ng, D), a_tokens (K, Na, D),
  yaw_prior (K,), yaw_prior_range (1,) -> pred_logits (K, Q), pred_xy (K, Q, 2),
  pred_yaw (K, Q, 2). A range of 4 rad or more means no heading prior.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ciper_ros.util.atomic import atomic_path, atomic_write_text
from ciper_ros.util.errors import UserError

OPSET = 17
MAX_REL_ERROR = 1e-4
NO_PRIOR_RANGE = 4.0          # > pi + one heading bin: every heading allowed
ENCODER_OUTPUTS = ('pose', 'tokens', 'desc')
DECODER_INPUTS = ('g_pose', 'g_tokens', 'a_tokens', 'yaw_prior', 'yaw_prior_range')
DECODER_OUTPUTS = ('pred_logits', 'pred_xy', 'pred_yaw')
# operators TensorRT's ONNX parser does not implement (or not for these uses)
TENSORRT_UNSUPPORTED = {'DFT', 'STFT', 'Loop', 'Scan', 'SequenceConstruct', 'SequenceAt',
                        'Unique', 'StringNormalizer', 'RandomNormalLike', 'Multinomial'}


class _Encoder(torch.nn.Module):
    def __init__(self, model, which: str) -> None:
        super().__init__()
        self.model, self.which = model, which

    def forward(self, image: torch.Tensor):
        enc = (self.model.encode_ground if self.which == 'ground'
               else self.model.encode_aerial)(image)
        return enc['pose'], enc['tokens'], enc['desc']


class _Decoder(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        mc = model.config
        p = mc.patch
        self.g_grid = (mc.ground_size[0] // p, mc.ground_size[1] // p)
        self.a_grid = (mc.aerial_size[0] // p, mc.aerial_size[1] // p)

    def forward(self, g_pose, g_tokens, a_tokens, yaw_prior, yaw_prior_range):
        out = self.model.decode({'pose': g_pose, 'tokens': g_tokens, 'grid': self.g_grid},
                                {'tokens': a_tokens, 'grid': self.a_grid},
                                yaw_prior=yaw_prior, yaw_prior_range=yaw_prior_range)
        return out['pred_logits'], out['pred_xy'], out['pred_yaw']


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs, outputs) -> None:
    import warnings

    with atomic_path(path, suffix='.onnx') as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')           # tracer / deprecation chatter
        torch.onnx.export(module, args, str(tmp), opset_version=OPSET, input_names=list(inputs),
                          output_names=list(outputs), dynamo=False, do_constant_folding=True)


def _check(path: Path, feeds: dict, reference: tuple) -> dict:
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(path))
    ops = sorted({n.op_type for n in graph.graph.node})
    bad = sorted(set(ops) & TENSORRT_UNSUPPORTED)
    if bad:
        raise RuntimeError(f'{path.name} uses operators TensorRT lacks: {bad}')
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = {i.name for i in sess.get_inputs()}     # unused inputs are pruned by the export
    got = sess.run(None, {k: v.detach().cpu().numpy() for k, v in feeds.items() if k in names})
    errors = {}
    for name, o, r in zip((x.name for x in sess.get_outputs()), got, reference, strict=True):
        r = r.detach().cpu().numpy()
        errors[name] = float(np.abs(o - r).max() / max(np.abs(r).max(), 1e-12))
    worst = max(errors.values())
    if not worst < MAX_REL_ERROR:
        raise RuntimeError(f'{path.name}: onnxruntime differs from torch by {worst:.2e} '
                           f'(relative; limit {MAX_REL_ERROR:g})')
    return {'ops': ops, 'relative_error': errors}


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
    gen = torch.Generator().manual_seed(seed)
    ground = torch.rand(1, 3, *mc.ground_size, generator=gen)
    aerial = torch.rand(1, 3, *mc.aerial_size, generator=gen)
    report: dict = {'model_sha256': file_sha256(model_path), 'model': mc.name,
                    'opset': OPSET, 'decoder_batch': decoder_batch, 'graphs': {}}
    for which, image in (('ground', ground), ('aerial', aerial)):
        mod = _Encoder(model, which).eval()
        path = out / f'{which}_encoder.onnx'
        _export(mod, (image,), path, ['image'], ENCODER_OUTPUTS)
        report['graphs'][path.name] = {
            'inputs': {'image': list(image.shape)},
            **_check(path, {'image': image}, mod(image))}
    # decoder inputs: real encodings of K different random images, a heading prior
    k = decoder_batch
    g = model.encode_ground(torch.rand(k, 3, *mc.ground_size, generator=gen))
    a = model.encode_aerial(torch.rand(k, 3, *mc.aerial_size, generator=gen))
    feeds = {'g_pose': g['pose'], 'g_tokens': g['tokens'], 'a_tokens': a['tokens'],
             'yaw_prior': torch.rand(k, generator=gen) * 6 - 3,
             'yaw_prior_range': torch.tensor([math.radians(30.0)])}
    dec = _Decoder(model).eval()
    path = out / 'pose_decoder.onnx'
    _export(dec, tuple(feeds.values()), path, DECODER_INPUTS, DECODER_OUTPUTS)
    checked = _check(path, feeds, dec(*feeds.values()))
    no_prior = dict(feeds, yaw_prior_range=torch.tensor([NO_PRIOR_RANGE]))
    checked_np = _check(path, no_prior, dec(*no_prior.values()))
    report['graphs'][path.name] = {
        'inputs': {n: list(v.shape) for n, v in feeds.items()}, 'ops': checked['ops'],
        'relative_error': checked['relative_error'],
        'relative_error_no_prior': checked_np['relative_error']}
    atomic_write_text(out / 'export.json', json.dumps(report, indent=1) + '\n')
    return report
