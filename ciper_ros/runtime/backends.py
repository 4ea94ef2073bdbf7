"""Inference backends behind one small interface (what the Localizer calls).

A backend has ``config`` (the model's ModelConfig) and three methods, all on torch tensors:

* ``encode_ground(image (1, 3, Hg, Wg))`` -> {'pose', 'tokens', 'desc', 'grid'}; v2 (fine)
  models add 'fine' (1, Cf, Hg / 4, Wg / 4) and 'col_mask' (1, Wg / 4)
* ``encode_aerial(image (1, 3, S, S))`` -> the same keys; v2 adds 'polar' (1, P, A, C)
* ``decode(g, a, yaw_prior=None, yaw_prior_range=pi)`` -> {'pred_logits', 'pred_xy',
  'pred_yaw'} for a batch of K (ground, aerial) pairs; v2 adds 'match_logit' (K,)

Backends: ``torch`` (CPU, or CUDA with float16 autocast; returns every tensor the model
does), ``onnxruntime`` (CPU, from ``ciper export``), ``tensorrt`` (engines built from the
same ONNX on the target GPU; written against TensorRT 10's Python API and **not verified on
hardware here**). The ONNX-based ones read the graphs' input and output names from the
export's ``export.json`` (:mod:`ciper_ros.runtime.export`) and refuse an export whose
interface is not the model's (a v1 export with a v2 model, or the reverse).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ciper_ros.model.config import ModelConfig
from ciper_ros.runtime.export import check_interface, GRAPHS, NO_PRIOR_RANGE, token_grids
from ciper_ros.util.errors import UserError

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')


class TorchBackend:
    def __init__(self, model, *, device: str = 'cpu', fp16: bool | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.fp16 = self.device.type == 'cuda' if fp16 is None else fp16

    def _amp(self):
        return torch.autocast(self.device.type, dtype=torch.float16,
                              enabled=self.fp16 and self.device.type == 'cuda')

    @torch.no_grad()
    def encode_ground(self, image: torch.Tensor) -> dict:
        with self._amp():
            return self.model.encode_ground(image.to(self.device))

    @torch.no_grad()
    def encode_aerial(self, image: torch.Tensor) -> dict:
        with self._amp():
            return self.model.encode_aerial(image.to(self.device))

    @torch.no_grad()
    def decode(self, g: dict, a: dict, *, yaw_prior=None, yaw_prior_range=math.pi) -> dict:
        with self._amp():
            out = self.model.decode(g, a, yaw_prior=yaw_prior, yaw_prior_range=yaw_prior_range)
        return {k: v.float() for k, v in out.items() if torch.is_tensor(v)}


class _GraphBackend:
    """Shared by the ONNX-based backends: the export's names, static batch (padded, split)."""

    def __init__(self, export_dir: str | os.PathLike, *, config: ModelConfig,
                 model_sha256: str | None) -> None:
        self.dir = Path(export_dir)
        f = self.dir / 'export.json'
        if not f.is_file():
            raise UserError(f'{self.dir} is not an export directory (no export.json); run '
                             '`ciper export` first')
        self.report = json.loads(f.read_text())
        self.config = config
        # the interface first: a v1 export with a v2 model says so, not only "other model"
        self.names = check_interface(self.report, config, self.dir)   # graph -> in / out
        if model_sha256 is not None and model_sha256 != self.report['model_sha256']:
            raise UserError(f'{self.dir} was exported from model '
                             f'{self.report["model_sha256"][:12]}, not {model_sha256[:12]}: '
                             're-export it')
        self.batch = int(self.report['decoder_batch'])
        self.grids = token_grids(config)

    def _check_names(self, graph: str, inputs: list[str], outputs: list[str]) -> None:
        """Refuse a graph whose tensors are not those ``export.json`` names for it."""
        want = self.names[graph]
        # inputs a graph does not use are pruned by the exporter: a subset is fine
        if set(inputs) - set(want['inputs']) or sorted(outputs) != sorted(want['outputs']):
            raise UserError(f'{self.dir}/{graph}.onnx has inputs {inputs} and outputs '
                             f'{outputs}, not those export.json names ({want["inputs"]} -> '
                             f'{want["outputs"]}): re-export it')

    def _run(self, graph: str, feeds: dict) -> list[np.ndarray]:
        """Run one graph; outputs in the order of ``self.names[graph]['outputs']``."""
        raise NotImplementedError

    def _encode(self, graph: str, image: torch.Tensor, grid) -> dict:
        outs = self._run(graph, {'image': image.detach().cpu().float().numpy()})
        enc = {k: torch.from_numpy(np.asarray(v))
               for k, v in zip(self.names[graph]['outputs'], outs, strict=True)}
        enc['grid'] = grid
        return enc

    def encode_ground(self, image: torch.Tensor) -> dict:
        return self._encode('ground_encoder', image, self.grids[0])

    def encode_aerial(self, image: torch.Tensor) -> dict:
        return self._encode('aerial_encoder', image, self.grids[1])

    def decode(self, g: dict, a: dict, *, yaw_prior=None, yaw_prior_range=math.pi) -> dict:
        """Decode K pairs in runs of the exported batch (the last run padded).

        Feeds the decoder's inputs by name (``g_fine`` is ``g['fine']``, ``a_polar`` is
        ``a['polar']``, ...) and returns every output of the graph.
        """
        k = g['pose'].shape[0]
        prior = yaw_prior if yaw_prior is not None else torch.zeros(k)
        rng = float(yaw_prior_range) if yaw_prior is not None else NO_PRIOR_RANGE
        inputs = {}
        for name in self.names['pose_decoder']['inputs']:
            if name == 'yaw_prior':
                inputs[name] = torch.as_tensor(prior, dtype=torch.float32).reshape(k)
            elif name != 'yaw_prior_range':
                enc = g if name.startswith('g_') else a
                if name[2:] not in enc:
                    raise UserError(f'decoder input {name} needs {name[2:]!r} in the '
                                     f'{"ground" if enc is g else "aerial"} encoding, which '
                                     f'has {sorted(enc)}')
                inputs[name] = enc[name[2:]]
        runs = []
        for start in range(0, k, self.batch):
            n = min(self.batch, k - start)
            feeds = {name: self._fit(t[start:start + n]) for name, t in inputs.items()}
            feeds['yaw_prior_range'] = np.array([rng], np.float32)
            runs.append([np.asarray(o)[:n] for o in self._run('pose_decoder', feeds)])
        return {name: torch.from_numpy(np.concatenate([r[i] for r in runs]))
                for i, name in enumerate(self.names['pose_decoder']['outputs'])}

    def _fit(self, t: torch.Tensor) -> np.ndarray:
        """One run's input with the static batch: short runs repeat their last row."""
        t = t.detach().cpu().float()
        pad = self.batch - t.shape[0]
        if pad:
            t = torch.cat([t, t[-1:].expand(pad, *t.shape[1:])])
        return np.ascontiguousarray(t.numpy())


class OnnxRuntimeBackend(_GraphBackend):
    def __init__(self, export_dir: str | os.PathLike, *, config: ModelConfig,
                 model_sha256: str | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        super().__init__(export_dir, config=config, model_sha256=model_sha256)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # no busy-waiting between runs: the Localizer does numpy work between graphs, and
        # spinning onnxruntime threads slowed it 40x (measured: 12.8 ms vs 0.3 ms)
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.sessions = {}
        for name in GRAPHS:
            path = self.dir / f'{name}.onnx'
            try:
                self.sessions[name] = ort.InferenceSession(
                    str(path), sess_options=opts, providers=['CPUExecutionProvider'])
            except Exception as e:     # onnxruntime raises its own exception types
                raise UserError(f'cannot load {path}: {str(e).splitlines()[0]}') from None
        for name, sess in self.sessions.items():
            self._check_names(name, [i.name for i in sess.get_inputs()],
                              [o.name for o in sess.get_outputs()])

    def _run(self, graph: str, feeds: dict) -> list[np.ndarray]:
        sess = self.sessions[graph]
        names = {i.name for i in sess.get_inputs()}
        return sess.run(list(self.names[graph]['outputs']),
                        {k: v for k, v in feeds.items() if k in names})


class TensorRTBackend(_GraphBackend):
    """TensorRT engines from the exported ONNX, cached per (ONNX, TensorRT, GPU, precision).

    Unverified here (no NVIDIA GPU or TensorRT on this machine or in CI): written against
    TensorRT 10's documented Python API. Device buffers are torch CUDA tensors (no pycuda).
    """

    def __init__(self, export_dir: str | os.PathLike, *, config: ModelConfig,
                 model_sha256: str | None = None, cache_dir: str | os.PathLike | None = None,
                 fp16: bool = True, workspace_mb: int = 1024, build_only: bool = False) -> None:
        try:
            import tensorrt as trt
        except ImportError:
            raise UserError('the tensorrt backend needs the TensorRT Python package '
                             '(pip install tensorrt on a machine with an NVIDIA GPU); use '
                             'torch or onnxruntime here') from None
        if not torch.cuda.is_available():
            raise UserError('the tensorrt backend needs a CUDA GPU visible to torch')
        super().__init__(export_dir, config=config, model_sha256=model_sha256)
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.cache_dir = Path(cache_dir or self.dir / 'trt_cache')
        self.fp16, self.workspace = fp16, workspace_mb * 2 ** 20
        self.engines, self.contexts = {}, {}
        for name in GRAPHS:
            blob = self._engine_bytes(name)
            if build_only:
                continue
            engine = trt.Runtime(self.logger).deserialize_cuda_engine(blob)
            if engine is None:            # stale or corrupt cache: rebuild once
                blob = self._engine_bytes(name, rebuild=True)
                engine = trt.Runtime(self.logger).deserialize_cuda_engine(blob)
            if engine is None:
                raise UserError(f'TensorRT cannot deserialise the engine of {name}')
            self._validate(name, engine)
            self.engines[name] = engine
            self.contexts[name] = engine.create_execution_context()

    def cache_key(self, name: str) -> str:
        onnx_hash = hashlib.sha256((self.dir / f'{name}.onnx').read_bytes()).hexdigest()[:16]
        cc = '%d%d' % torch.cuda.get_device_capability()
        return f'{name}-{onnx_hash}-trt{self.trt.__version__}-sm{cc}-' \
               f'{"fp16" if self.fp16 else "fp32"}'

    def _engine_bytes(self, name: str, *, rebuild: bool = False) -> bytes:
        from ciper_ros.util.atomic import atomic_write_bytes

        path = self.cache_dir / f'{self.cache_key(name)}.engine'
        if path.is_file() and not rebuild:
            return path.read_bytes()
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)          # explicit batch (TensorRT 10 default)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse((self.dir / f'{name}.onnx').read_bytes()):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise UserError(f'TensorRT cannot parse {name}.onnx: {errors}')
        cfg = builder.create_builder_config()
        cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace)
        if self.fp16:
            cfg.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, cfg)
        if serialized is None:
            raise UserError(f'TensorRT failed to build an engine for {name}.onnx')
        blob = bytes(serialized)
        atomic_write_bytes(path, blob)
        return blob

    def _validate(self, name: str, engine) -> None:
        trt = self.trt
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._check_names(name, inputs, [n for n in names if n not in inputs])
        shapes = self.report['graphs'][f'{name}.onnx']['inputs']
        for n in inputs:
            if list(engine.get_tensor_shape(n)) != shapes[n]:
                raise UserError(f'{name} engine input {n} has shape '
                                 f'{list(engine.get_tensor_shape(n))}, expected {shapes[n]}')

    def _run(self, graph: str, feeds: dict) -> list[np.ndarray]:
        engine, ctx = self.engines[graph], self.contexts[graph]
        trt = self.trt
        keep = []
        outputs = []
        for i in range(engine.num_io_tensors):
            n = engine.get_tensor_name(i)
            if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT:
                t = torch.from_numpy(feeds[n]).cuda().contiguous()
            else:
                t = torch.empty(tuple(engine.get_tensor_shape(n)), dtype=torch.float32,
                                device='cuda')
                outputs.append((n, t))
            keep.append(t)
            ctx.set_tensor_address(n, t.data_ptr())
        stream = torch.cuda.current_stream()
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f'TensorRT execution of {graph} failed')
        stream.synchronize()
        by_name = {n: t.cpu().numpy() for n, t in outputs}
        return [by_name[n] for n in self.names[graph]['outputs']]


def make_backend(kind: str, *, model_path: str | os.PathLike,
                 export_dir: str | os.PathLike | None = None, device: str = 'cpu', **kw):
    """Build a backend by name; ONNX-based ones check the export came from ``model_path``."""
    from ciper_ros.model.build import load_checkpoint, load_model
    from ciper_ros.runtime.index import file_sha256

    if kind not in BACKENDS:
        raise UserError(f'backend must be one of {BACKENDS}, got {kind!r}')
    if kind == 'torch':
        return TorchBackend(load_model(model_path), device=device, **kw)
    if export_dir is None:
        raise UserError(f'the {kind} backend needs an export directory (ciper export)')
    config = ModelConfig.from_dict(load_checkpoint(model_path)['config'])
    cls = OnnxRuntimeBackend if kind == 'onnxruntime' else TensorRTBackend
    return cls(export_dir, config=config, model_sha256=file_sha256(model_path), **kw)
