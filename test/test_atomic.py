"""Atomic writes: all or nothing, and the file gets the usual mode (not mkstemp's 0600)."""

import os

import pytest

from ciper_ros.util.atomic import atomic_path, atomic_write_text, FILE_MODE


def test_atomic_write_replaces_whole_files_with_the_umask_mode(tmp_path):
    target = tmp_path / 'out.txt'
    atomic_write_text(target, 'first\n')
    assert target.read_text() == 'first\n'
    assert os.stat(target).st_mode & 0o777 == FILE_MODE
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('half')
            raise RuntimeError('interrupted')
    assert target.read_text() == 'first\n'             # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ['out.txt']   # no temp file left
