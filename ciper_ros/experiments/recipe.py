"""The default model's recipe (``make model`` / ``ciper model build``): reproducible, resumable.

Stages, each resumable and skipped when already done:

1. cities: training seeds 1000.. (``n_train_cities``), validation seed 500, test seed 0 --
   disjoint by construction (:func:`ciper_ros.synth.pairs.city_seeds`);
2. the render bank: ``renders_per_city`` panoramas (at heading 0; rolled for any heading at
   draw time, exact for a panorama) with aerial crops twice the model's, so tile offsets
   are drawn at crop time (``ciper synth pairs`` shards, written atomically);
3. training from the bank (``config/train/default_model_v2.yaml``, training cities under
   appearance presets drawn by seed) under a wall-clock budget per invocation; a later
   invocation resumes from the last checkpoint exactly.

The run records its recipe (``state.json`` in the work dir, and every snapshot and shipped
checkpoint): ``ciper model finalize`` and ``snapshot`` read it back
(:meth:`ModelRecipe.of_run`), so a card never names a recipe other than the one trained.

Across sessions (fresh clones): a run that finds no checkpoint of its own starts from the
committed weights (:meth:`ModelRecipe.resume_source`): the shipped model, which
``ciper model finalize`` writes with its step, training time and validation curve, or a
mid-training snapshot (``ciper model snapshot`` -> ``models/progress/default_model.pt``),
whichever has trained more. The optimizer's moments restart (a short re-warm-up, not a
bit-exact resume -- within a workspace, resumes are exact).

Then ``ciper model finalize`` (:mod:`ciper_ros.experiments.finalize`; ``make model`` runs it
after training): calibration on the validation city, evaluation on the test city, the
shipped checkpoint and its model card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import os
from pathlib import Path
import shutil
import time

from ciper_ros.metrics.pose import upgrade_metric_names
from ciper_ros.util.atomic import atomic_write_text

TEST_SEED = 0          # the held-out evaluation city (test split)
PROGRESS_FILE = Path('models') / 'progress' / 'default_model.pt'
SHIPPED_FILE = Path('models') / 'ciper_t_synthetic.pt'
VAL_SEED = 500         # calibration and validation (validation split)


@dataclass(frozen=True)
class ModelRecipe:
    work_dir: str = 'runs/default_model'
    train_config: str = 'config/train/default_model_v2.yaml'
    n_train_cities: int = 128
    city_size_m: float = 500.0
    zooms: tuple[int, ...] = (19,)
    renders_per_city: int = 96
    shard_size: int = 256
    bank_seed: int = 0
    overrides: list[str] = field(default_factory=list)   # key=value for the train config
    appearance: str = 'random'      # 'random': each training city under a preset drawn by
    #                                 seed (synth.appearance.TRAINING_PRESETS); validation and
    #                                 test cities stay 'default'; the held-out preset is never
    #                                 trained on
    progress_file: str = str(PROGRESS_FILE)     # mid-training snapshots (ciper model snapshot)
    shipped_file: str = str(SHIPPED_FILE)       # finalize's output carries the same state

    @property
    def root(self) -> Path:
        return Path(self.work_dir)

    @classmethod
    def from_dict(cls, d: dict, **changes) -> ModelRecipe:
        """Read a recorded recipe (JSON lists back to tuples; unknown keys: an error)."""
        d = {**d, **changes}
        return cls(**{k: tuple(v) if k == 'zooms' else v for k, v in d.items()})

    @classmethod
    def of_run(cls, work_dir: str | os.PathLike, source: str | os.PathLike | None = None
               ) -> ModelRecipe:
        """Return the recipe a run was trained with.

        From the work dir's ``state.json`` (written by every :func:`train`), else from the
        ``recipe`` recorded in ``source`` (a snapshot or shipped checkpoint; a fresh clone
        finalizing the committed snapshot), else the defaults. ``work_dir`` always wins: the
        recorded one may be another machine's.
        """
        state = Path(work_dir) / 'state.json'
        if state.is_file():
            return cls.from_dict(json.loads(state.read_text())['recipe'],
                                 work_dir=str(work_dir))
        if source is not None and Path(source).is_file():
            from ciper_ros.model.build import load_checkpoint

            recorded = load_checkpoint(source).get('recipe')
            if recorded:
                return cls.from_dict(recorded, work_dir=str(work_dir))
        return cls(work_dir=str(work_dir))

    @property
    def fine_tunes(self) -> bool:
        """Tell whether the overrides start the run from given weights (``init_checkpoint``)."""
        return any(o.partition('=')[0].strip() == 'init_checkpoint'
                   and o.partition('=')[2].strip() not in ('', "''", '""')
                   for o in self.overrides)

    def resume_source(self, model_config=None) -> Path | None:
        """Pick the committed weights a run without its own checkpoint starts from.

        The progress snapshot or the shipped model (``ciper model finalize`` writes the same
        step, training time and curve into it), whichever has trained more steps; None when
        neither is a recipe checkpoint, or when the run fine-tunes (``init_checkpoint``: it
        starts at step 0 from those weights). ``model_config`` (a ModelConfig): only weights
        of that model count (a v1 shipped model does not seed a v2 run).
        """
        from ciper_ros.model.build import load_checkpoint

        if self.fine_tunes:
            return None
        want = None if model_config is None else _plain_dict(model_config.to_dict())
        best, best_step = None, -1
        for path in (Path(self.progress_file), Path(self.shipped_file)):
            if not path.is_file():
                continue
            blob = load_checkpoint(path)
            if want is not None and _plain_dict(blob['config']) != want:
                continue
            if 'elapsed_s' in blob and 'recipe' in blob and int(blob['step']) > best_step:
                best, best_step = path, int(blob['step'])
        return best

    def city_dir(self, seed: int) -> Path:
        return self.root / 'cities' / str(seed)

    @property
    def train_seeds(self) -> list[int]:
        from ciper_ros.synth.pairs import city_seeds

        return city_seeds('train', self.n_train_cities)


def _plain_dict(d: dict) -> dict:
    """Return a config dict with tuples as lists, as JSON and checkpoints hold it."""
    from ciper_ros.model.config import ModelConfig
    from ciper_ros.util.config import json_plain

    full = ModelConfig.from_dict(d).to_dict()      # older checkpoints: defaults filled in
    return {k: json_plain(v) for k, v in full.items()}


def city_appearance(recipe: ModelRecipe, seed: int) -> str:
    """Appearance preset of a recipe city: randomized for training cities, else default."""
    from ciper_ros.synth.appearance import preset_for_seed

    if recipe.appearance == 'random' and seed in recipe.train_seeds:
        return preset_for_seed(seed)
    return 'default'


def _city_done(folder: Path) -> bool:
    from ciper_ros.synth.folder import city_paths

    try:
        city_paths(folder)
    except FileNotFoundError:
        return False
    return True


def make_cities(recipe: ModelRecipe, *, progress: bool = True) -> list[Path]:
    """Generate every city of the recipe that is not there yet; return all folders."""
    from tqdm import tqdm

    from ciper_ros.synth.folder import write_city_folder
    from ciper_ros.synth.world import CityConfig

    seeds = recipe.train_seeds + [VAL_SEED, TEST_SEED]
    todo = [s for s in seeds if not _city_done(recipe.city_dir(s))]
    for seed in tqdm(todo, desc='cities', unit='city', disable=not progress):
        # written into a staging folder and renamed: a killed run leaves no half city
        final = recipe.city_dir(seed)
        staging = final.with_name(final.name + '.partial')
        write_city_folder(staging, CityConfig(seed=seed, size_m=recipe.city_size_m,
                                              appearance=city_appearance(recipe, seed)),
                          zooms=recipe.zooms, progress=False)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    return [recipe.city_dir(s) for s in seeds]


def make_bank(recipe: ModelRecipe, model_config, pairs: dict, *,
              progress: bool = True) -> Path:
    """Pre-render the training cities' render bank (resumable shards)."""
    from ciper_ros.synth.pairs import CitySource, PairConfig, write_shards

    cfg = PairConfig.for_model(model_config, **pairs)
    sources = [CitySource.from_folder(recipe.city_dir(s)) for s in recipe.train_seeds]
    return write_shards(recipe.root / 'bank', sources, cfg,
                        n_renders=recipe.renders_per_city * len(sources),
                        shard_size=recipe.shard_size, seed=recipe.bank_seed,
                        progress=progress)


def _prepare(recipe: ModelRecipe, model_config, pairs: dict, progress: bool) -> Path:
    make_cities(recipe, progress=progress)
    return make_bank(recipe, model_config, pairs, progress=progress)


def prepare_data(recipe: ModelRecipe, model_config, pairs: dict, *,
                 progress: bool = True) -> Path:
    """Make the cities and the render bank in a child process; return the bank folder.

    Rendering the bank opens every training city's world (about 80 MB each: 10 GB for 128
    cities, measured), and the allocator does not give that back; training, which forks
    its DataLoader workers, should not start from such a process.
    """
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_prepare, recipe, model_config, pairs, progress).result()


def prepare(recipe: ModelRecipe, *, progress: bool = True):
    """Make the recipe's cities and render bank (the stages before training).

    Returns (the bank folder, the ModelConfig the recipe trains).
    """
    from ciper_ros.model.build import build_model
    from ciper_ros.train.trainer import load_config

    base = load_config(recipe.train_config, recipe.overrides)
    model_config = build_model(base.model, **base.model_overrides).config
    return prepare_data(recipe, model_config, base.pairs, progress=progress), model_config


def train(recipe: ModelRecipe, *, minutes: float = 0.0, progress: bool = True) -> dict:
    """Run every stage that is not done yet; train for at most ``minutes`` (0: to the end)."""
    from ciper_ros.train.trainer import load_config, Trainer

    t0 = time.perf_counter()
    bank, model_config = prepare(recipe, progress=progress)
    budget = run_budget_minutes(recipe, minutes, setup_s=time.perf_counter() - t0,
                                model_config=model_config)
    cfg = load_config(recipe.train_config, [
        *recipe.overrides, f'out_dir={recipe.root / "train"}', f'shards={bank}',
        'cities=[]', f'val_cities=[{recipe.city_dir(VAL_SEED)}]', f'max_minutes={budget}'])
    trainer = Trainer(cfg)
    source = None if trainer.last_path.exists() else recipe.resume_source(model_config)
    if source is not None:
        _start_from_snapshot(trainer, source)
    record = trainer.run(progress=progress)
    state = {'recipe': asdict(recipe), 'step': trainer.step, 'max_steps': cfg.max_steps,
             'train_hours': round(trainer.elapsed_s / 3600.0, 3),
             'finished': trainer.step >= cfg.max_steps, 'last_record': record,
             'checkpoint': str(trainer.last_path)}
    atomic_write_text(recipe.root / 'state.json', json.dumps(state, indent=1, default=str) + '\n')
    return state


def run_budget_minutes(recipe: ModelRecipe, minutes: float, *, setup_s: float = 0.0,
                       model_config=None) -> float:
    """Compute the trainer's ``max_minutes`` for ``minutes`` more training in this run.

    The trainer's budget counts training time summed over resumes (so a killed run stops
    where an uninterrupted one would); this run adds its own minutes, less its set-up, to
    the time the run (or the snapshot it starts from) has already trained. 0: no budget.
    """
    if not minutes:
        return 0.0
    from ciper_ros.model.build import load_checkpoint

    last = recipe.root / 'train' / 'last.pt'
    source = last if last.exists() else recipe.resume_source(model_config)
    done_s = float(load_checkpoint(source).get('elapsed_s', 0.0)) if source else 0.0
    return done_s / 60.0 + max(minutes - setup_s / 60.0, 0.5)


def _start_from_snapshot(trainer, path: Path) -> None:
    """Seed a run without a checkpoint from a committed progress snapshot."""
    from ciper_ros.model.build import load_checkpoint

    blob = load_checkpoint(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob['model'].items()}
    trainer.model.load_state_dict(state)
    trainer.step = int(blob['step'])
    trainer.elapsed_s = float(blob.get('elapsed_s', 0.0))
    trainer.save()             # the run's own checkpoint from here on (fresh optimizer)
    # the run's log starts with the snapshot's validation curve, so snapshots and the card
    # written from this run keep the whole history
    trainer.out.mkdir(parents=True, exist_ok=True)
    with open(trainer.out / 'metrics.jsonl', 'a') as f:
        for rec in blob.get('curve') or []:
            f.write(json.dumps(upgrade_metric_names(rec)) + '\n')


def validation_curve(log: Path) -> list[dict]:
    """Read the validation records of a run's ``metrics.jsonl`` ([] when there is none)."""
    if not log.is_file():
        return []
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [upgrade_metric_names(r) for r in recs if any(k.startswith('val/') for k in r)]


def snapshot(recipe: ModelRecipe, out: str | os.PathLike | None = None) -> Path:
    """Write the run's progress (float16 weights, step, time, curve) for the repository."""
    from ciper_ros.model.build import load_checkpoint, model_from_checkpoint, save_checkpoint

    last = recipe.root / 'train' / 'last.pt'
    blob = load_checkpoint(last)
    curve = validation_curve(recipe.root / 'train' / 'metrics.jsonl')
    return save_checkpoint(out or recipe.progress_file, model_from_checkpoint(blob),
                           step=int(blob['step']), half=True,
                           extra={'elapsed_s': float(blob.get('elapsed_s', 0.0)),
                                  'train_config': blob.get('train_config', {}),
                                  'recipe': asdict(recipe), 'curve': curve})
