"""Tile index: grid, descriptors, FAISS, SQLite; resume after a kill; shards; bad input."""

import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from ciper_ros.cli import main
from ciper_ros.model.build import build_model, save_checkpoint
from ciper_ros.runtime.index import (
    build_index,
    file_sha256,
    make_faiss,
    merge_shards,
    read_info,
    require_valid_index,
    TileIndex,
    TileIndexError,
    verify_index,
)
from ciper_ros.synth.folder import city_paths, write_city_folder
from ciper_ros.synth.world import CityConfig

from tinymodel import TINY_MODEL

SIDE_M = 40.0
CHUNK = 16


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('index')
    write_city_folder(root / 'city', CityConfig(seed=7, size_m=250.0), zooms=(19,),
                      progress=False)
    model = root / 'tiny.pt'
    import torch
    torch.manual_seed(0)
    save_checkpoint(model, build_model('ciper_t', **TINY_MODEL), step=1)
    other = root / 'other.pt'
    torch.manual_seed(1)
    save_checkpoint(other, build_model('ciper_t', **TINY_MODEL), step=1)
    map_path = city_paths(root / 'city')[1]
    full = build_index(map_path=map_path, model_path=model, out_dir=root / 'full',
                       crop_side_m=SIDE_M, chunk_tiles=CHUNK, progress=False)
    return {'root': root, 'map': map_path, 'model': model, 'other': other, 'full': full}


def test_index_contents_and_self_retrieval(setup):
    idx = TileIndex(setup['full'], model_path=setup['model'])
    info = read_info(setup['full'])
    n = len(idx)
    assert n == info['n_tiles'] > 2 * CHUNK
    assert info['model_sha256'] == file_sha256(setup['model']) and info['faiss'] == 'flat'
    assert idx.descriptors.dtype == np.float16
    norms = np.linalg.norm(idx.descriptors.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)
    # grid: neighbours one stride apart in the index's ENU frame
    d = np.linalg.norm(idx.xy_m[1] - idx.xy_m[0])
    assert d == pytest.approx(SIDE_M / 2, abs=1e-3)
    for i in range(0, n, max(1, n // 7)):
        ids, scores = idx.search(idx.descriptors[i], 3)
        assert ids[0] == i and scores[0] == pytest.approx(1.0, abs=3e-3)
        near = idx.tiles_near(idx.xy_m[i], SIDE_M / 2 + 1e-3)
        assert i in near and len(near) <= 5
        ids_c, _ = idx.search(idx.descriptors[i], 2, candidates=near)
        assert ids_c[0] == i


class InterruptedBuildError(Exception):
    pass


def test_resume_reuses_finished_chunks_and_matches_a_clean_build(setup, tmp_path):
    # interrupted deterministically after the 2nd chunk (no timed kill that a fast build
    # can outrun); the resumed build encodes only the chunks the first one did not write
    out = tmp_path / 'resumed'
    kw = {'map_path': setup['map'], 'model_path': setup['model'], 'out_dir': out,
          'crop_side_m': SIDE_M, 'chunk_tiles': CHUNK, 'progress': False}
    first = []

    def stop_after_two(a, b):
        first.append((a, b))
        if len(first) == 2:
            raise InterruptedBuildError

    with pytest.raises(InterruptedBuildError):
        build_index(**kw, on_chunk=stop_after_two)
    chunks = Path(str(out) + '.partial') / 'chunks'
    written = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns)
               for f in sorted(chunks.glob('*.npy'))}
    assert sorted(written) == [f'{a:09d}.npy' for a, _ in first] and not out.exists()
    assert not list(chunks.parent.rglob('*.tmp')) and not list(chunks.glob('.*'))
    with pytest.raises(TileIndexError, match='unfinished build'):
        read_info(out)
    second = []

    def record(a, b):
        second.append((a, b))
        # the chunks of the first run are still the very files it wrote
        assert {n: (chunks / n).stat().st_ino for n in written} == \
            {n: v[0] for n, v in written.items()}
        assert {n: (chunks / n).stat().st_mtime_ns for n in written} == \
            {n: v[1] for n, v in written.items()}

    build_index(**kw, on_chunk=record)
    n = read_info(setup['full'])['n_tiles']
    every = [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
    assert second == every[2:] and first == every[:2]
    a, b = TileIndex(out), TileIndex(setup['full'])
    assert np.array_equal(a.descriptors, b.descriptors)
    assert np.array_equal(a.latlon_deg, b.latlon_deg)
    assert not Path(str(out) + '.partial').exists()


def test_the_cli_resumes_an_unfinished_build(setup, tmp_path):
    out = tmp_path / 'cli'
    kw = {'map_path': setup['map'], 'model_path': setup['model'], 'out_dir': out,
          'crop_side_m': SIDE_M, 'chunk_tiles': CHUNK, 'progress': False}

    def stop(a, b):
        raise InterruptedBuildError

    with pytest.raises(InterruptedBuildError):
        build_index(**kw, on_chunk=stop)
    assert main(['index', 'build', '--map', str(setup['map']), '--model', str(setup['model']),
                 '--crop-side-m', str(SIDE_M), '--chunk-tiles', str(CHUNK), '--out',
                 str(out)]) == 0
    assert np.array_equal(TileIndex(out).descriptors, TileIndex(setup['full']).descriptors)


def test_verify_index_finds_missing_and_corrupt_files(setup, tmp_path):
    import json
    import shutil

    assert verify_index(setup['full']) == []
    assert require_valid_index(setup['full'])['n_tiles'] == len(TileIndex(setup['full']))

    def broken(name):
        d = tmp_path / name
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(setup['full'], d)
        return d

    d = broken('no_desc')
    (d / 'descriptors.npy').unlink()
    assert verify_index(d) == [f'{d / "descriptors.npy"} is missing']
    d = broken('short_desc')
    desc = np.load(d / 'descriptors.npy')
    np.save(d / 'descriptors.npy', desc[:-1])
    assert 'descriptors.npy is float16' in verify_index(d)[0]
    d = broken('nan_desc')
    desc[3, 0] = np.nan
    np.save(d / 'descriptors.npy', desc)
    assert verify_index(d) == [f'{d / "descriptors.npy"} holds non-finite descriptors']
    d = broken('cut_desc')
    raw = (d / 'descriptors.npy').read_bytes()
    (d / 'descriptors.npy').write_bytes(raw[:len(raw) // 2])
    assert 'descriptors.npy is corrupt' in verify_index(d)[0]
    d = broken('no_faiss')
    (d / 'faiss.index').unlink()
    assert verify_index(d) == [f'{d / "faiss.index"} is missing']
    d = broken('bad_faiss')
    (d / 'faiss.index').write_bytes(b'garbage')
    assert 'faiss.index is corrupt' in verify_index(d)[0]
    d = broken('small_faiss')
    import faiss
    faiss.write_index(make_faiss(desc[:5].astype(np.float32), 'flat')[0],
                      str(d / 'faiss.index'))
    assert 'faiss.index holds 5 vectors' in verify_index(d)[0]
    d = broken('no_tiles')
    (d / 'tiles.sqlite').unlink()
    assert verify_index(d) == [f'{d / "tiles.sqlite"} is missing']
    d = broken('cut_tiles')
    raw = (d / 'tiles.sqlite').read_bytes()
    (d / 'tiles.sqlite').write_bytes(raw[:len(raw) // 2])
    problems = verify_index(d)
    assert len(problems) == 1 and 'tiles.sqlite' in problems[0]
    d = broken('fewer_tiles')
    import sqlite3
    con = sqlite3.connect(d / 'tiles.sqlite')
    con.execute('DELETE FROM tiles WHERE id = 7')
    con.commit()
    con.close()
    assert 'tiles.sqlite lists' in verify_index(d)[0]
    with pytest.raises(TileIndexError, match='tiles.sqlite lists'):
        require_valid_index(d)
    d = broken('keys')
    info = json.loads((d / 'index.json').read_text())
    del info['desc_dim'], info['chunk_tiles']
    (d / 'index.json').write_text(json.dumps(info))
    assert verify_index(d) == [f'{d / "index.json"} is incomplete: missing keys desc_dim, '
                               'chunk_tiles; rebuild the index']
    # the node and every tool open indexes through the same reader
    with pytest.raises(TileIndexError, match='missing keys desc_dim, chunk_tiles'):
        TileIndex(d)
    (d / 'index.json').write_text('[1, 2]')
    with pytest.raises(TileIndexError, match='expected a JSON object'):
        read_info(d)


def test_index_info_exits_non_zero_on_missing_or_corrupt_files(setup, tmp_path, capsys):
    import shutil

    assert main(['index', 'info', str(setup['full'])]) == 0
    d = tmp_path / 'broken'
    shutil.copytree(setup['full'], d)
    (d / 'faiss.index').write_bytes(b'garbage')
    capsys.readouterr()
    assert main(['index', 'info', str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('ciper: error: ') and 'faiss.index' in err[0]


def test_build_out_naming_an_existing_file_fails_before_building(setup, tmp_path):
    f = tmp_path / 'index_file'
    f.write_text('x')
    # a missing map and checkpoint: the output is checked before either is opened
    with pytest.raises(TileIndexError, match='is an existing file, not an index directory'):
        build_index(map_path=tmp_path / 'nomap.mbtiles', model_path=tmp_path / 'no.pt',
                    out_dir=f, progress=False)
    with pytest.raises(TileIndexError, match='exists and is not a tile index'):
        build_index(map_path=tmp_path / 'nomap.mbtiles', model_path=tmp_path / 'no.pt',
                    out_dir=tmp_path, progress=False)
    assert f.read_text() == 'x'


def test_two_shards_merge_to_the_single_build(setup, tmp_path):
    shards = [build_index(map_path=setup['map'], model_path=setup['model'],
                          out_dir=tmp_path / f's{i}', crop_side_m=SIDE_M, chunk_tiles=CHUNK,
                          shard=(i, 2), progress=False) for i in (1, 0)]
    assert read_info(shards[0])['faiss'] is None
    with pytest.raises(TileIndexError, match='merge the shards'):
        TileIndex(shards[0])
    with pytest.raises(TileIndexError, match='exactly once'):
        merge_shards([shards[0], shards[0]], tmp_path / 'bad')
    assert main(['index', 'merge', str(shards[0]), str(shards[1]), '--out',
                 str(tmp_path / 'merged')]) == 0
    merged, full = TileIndex(tmp_path / 'merged'), TileIndex(setup['full'])
    assert verify_index(tmp_path / 'merged') == []
    assert np.array_equal(merged.descriptors, full.descriptors)
    assert np.array_equal(merged.xy_m, full.xy_m)
    q = full.descriptors[5]
    assert np.array_equal(merged.search(q, 5)[0], full.search(q, 5)[0])


def test_merge_names_a_truncated_shard_file(setup, tmp_path, capsys):
    import shutil

    shards = [build_index(map_path=setup['map'], model_path=setup['model'],
                          out_dir=tmp_path / f's{i}', crop_side_m=SIDE_M, chunk_tiles=CHUNK,
                          shard=(i, 2), progress=False) for i in (0, 1)]
    assert [verify_index(s) for s in shards] == [[], []]
    cut = tmp_path / 'cut'
    shutil.copytree(shards[1], cut)
    raw = (cut / 'tiles.sqlite').read_bytes()
    (cut / 'tiles.sqlite').write_bytes(raw[:len(raw) // 2])
    with pytest.raises(TileIndexError, match=f'cannot merge shard {cut}: .*tiles.sqlite'):
        merge_shards([shards[0], cut], tmp_path / 'merged')
    assert not (tmp_path / 'merged').exists() and not (tmp_path / 'merged.partial').exists()
    assert main(['index', 'merge', str(shards[0]), str(cut), '--out',
                 str(tmp_path / 'merged')]) == 2
    err = capsys.readouterr().err
    assert 'tiles.sqlite' in err and 'Traceback' not in err


def test_bad_indexes_and_models_are_refused(setup, tmp_path, capsys):
    with pytest.raises(TileIndexError, match='rebuild the index for this model'):
        TileIndex(setup['full'], model_path=setup['other'])
    broken = tmp_path / 'broken'
    import shutil
    shutil.copytree(setup['full'], broken)
    (broken / 'faiss.index').write_bytes(b'garbage')
    with pytest.raises(TileIndexError, match='faiss.index is corrupt'):
        TileIndex(broken)
    shutil.copy(setup['full'] / 'faiss.index', broken / 'faiss.index')
    (broken / 'tiles.sqlite').write_bytes(b'not sqlite at all' * 100)
    with pytest.raises(TileIndexError, match='tiles.sqlite is corrupt'):
        TileIndex(broken)
    (broken / 'index.json').write_text('{')
    with pytest.raises(TileIndexError, match='index.json is corrupt'):
        TileIndex(broken)
    with pytest.raises(TileIndexError, match='no index.json'):
        TileIndex(tmp_path)
    with pytest.raises(TileIndexError, match='already a finished index'):
        build_index(map_path=setup['map'], model_path=setup['model'], out_dir=setup['full'],
                    progress=False)
    # a partial build with other parameters is not silently mixed in
    part = tmp_path / 'p.partial'
    (part / 'chunks').mkdir(parents=True)
    (part / 'params.json').write_text('{"spec": {}}')
    with pytest.raises(TileIndexError, match='partial build with other parameters'):
        build_index(map_path=setup['map'], model_path=setup['model'], out_dir=tmp_path / 'p',
                    crop_side_m=SIDE_M, progress=False)
    # an area outside the map: a clear error through the CLI
    assert main(['index', 'build', '--map', str(setup['map']), '--model', str(setup['model']),
                 '--area', '10.0,40.0,10.1,40.1', '--out', str(tmp_path / 'x')]) == 2
    err = capsys.readouterr().err
    assert 'no 64 m tile fits' in err and 'Traceback' not in err
    assert main(['index', 'info', str(setup['full'])]) == 0
    assert 'FAISS flat' in capsys.readouterr().out


@pytest.mark.parametrize('kind', ['hnsw', 'ivf'])
def test_approximate_search_keeps_recall(kind):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 64))
    x = centres[rng.integers(50, size=20_000)] + 0.6 * rng.normal(size=(20_000, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(len(x), 200, replace=False)] + 0.05 * rng.normal(size=(200, 64))
    exact, _ = make_faiss(x, 'flat')
    approx, got = make_faiss(x, kind)
    assert got == kind
    _, ie = exact.search(q.astype(np.float32), 10)
    _, ia = approx.search(q.astype(np.float32), 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ia, ie, strict=True)])
    assert recall >= 0.95, recall
    assert make_faiss(x[:500], 'auto', flat_max=1000)[1] == 'flat'
    assert make_faiss(x[:2000], 'auto', flat_max=1000)[1] == 'hnsw'


def test_building_leaves_autograd_on(setup):
    import torch
    assert torch.is_grad_enabled()     # regression: a build once switched it off globally


def test_torchrun_ranks_build_their_own_shards(setup, tmp_path):
    env = {**os.environ, 'WORLD_SIZE': '2'}
    base = [sys.executable, '-m', 'ciper_ros.cli', 'index', 'build', '--map', str(setup['map']),
            '--model', str(setup['model']), '--crop-side-m', str(SIDE_M), '--chunk-tiles',
            str(CHUNK), '--out', str(tmp_path / 'idx')]
    for rank in (0, 1):
        subprocess.run(base, env={**env, 'RANK': str(rank)}, check=True, capture_output=True)
    shards = [tmp_path / f'idx.shard{r}of2' for r in (0, 1)]
    assert [read_info(s)['shard'] for s in shards] == [[0, 2], [1, 2]]
    merge_shards(shards, tmp_path / 'merged')
    assert np.array_equal(TileIndex(tmp_path / 'merged').descriptors,
                          TileIndex(setup['full']).descriptors)
