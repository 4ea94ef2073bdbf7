"""Frames from an image folder, the loop that runs frames through the pipeline, and results.

A folder's images are sorted by name; they share one prior (or none) and, for a forward
camera, one set of intrinsics. Recordings (rosbag2, ROS 1) come from
:func:`ciper_ros.bag.reader.drive_frames` instead; both end as
:class:`~ciper_ros.metrics.frames.FrameRecord` rows written atomically as CSV or JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import csv
import io
import json
import math
import os
from pathlib import Path

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.metrics.frames import COLUMNS, FrameRecord, summarize
from ciper_ros.runtime.localizer import Prior
from ciper_ros.runtime.pipeline import Frame, FramePipeline
from ciper_ros.util.atomic import atomic_write_text
from ciper_ros.util.errors import UserError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


def folder_frames(folder: str | os.PathLike, *, prior: Prior | None = None,
                  camera: PinholeCamera | None = None) -> Iterator[Frame]:
    """Frames of the images in ``folder`` (sorted by name; stamps are their positions)."""
    from ciper_ros.data.common import read_image

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {folder}')
    for i, f in enumerate(files):
        try:
            image, error = read_image(f), ''
        except ValueError as e:
            image, error = None, str(e)
        yield Frame(stamp_ns=i, image=image, name=f.name, error=error, prior=prior,
                    camera=camera)


def run_frames(pipeline: FramePipeline, frames: Iterable[Frame], *, total: int | None = None,
               desc: str = 'localize', progress: bool = True) -> list[FrameRecord]:
    """Process every frame in order (a progress bar on long runs)."""
    from tqdm import tqdm

    return [pipeline.process(f) for f in tqdm(frames, total=total, desc=desc, unit='frame',
                                               disable=not progress)]


def _rows(records: list[FrameRecord], missing) -> list[dict]:
    """Record rows with ``t_s`` (seconds from the first frame); non-finite -> ``missing``."""
    t0 = records[0].stamp_ns if records else 0
    return [{k: missing if isinstance(v, float) and not math.isfinite(v) else v
             for k, v in ({'t_s': (r.stamp_ns - t0) * 1e-9} | r.row()).items()}
            for r in records]


def write_records(records: list[FrameRecord], path: str | os.PathLike) -> None:
    """Write one row per frame: ``.json`` (with the summary; null for no value) or CSV."""
    p = Path(path)
    if p.suffix.lower() == '.json':
        atomic_write_text(p, json.dumps({'summary': summarize(records),
                                         'frames': _rows(records, None)}, indent=1) + '\n')
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=['t_s', *COLUMNS])
    w.writeheader()
    w.writerows(_rows(records, ''))
    atomic_write_text(p, buf.getvalue())
