"""A rig's images are matched by stamp within a tolerance, the newest complete set first."""

import pytest

from ciper_ros.runtime.sync import StampSync

MS = 1_000_000


def test_a_set_leaves_when_every_camera_has_an_image_near_the_first_ones_stamp():
    s = StampSync(cameras=3, tolerance_ns=10 * MS)
    assert s.add(0, 100 * MS, 'a0') is None
    assert s.add(2, 104 * MS, 'c0') is None
    assert s.waiting() == [1]
    assert s.add(1, 95 * MS, 'b0') == (100 * MS, ('a0', 'b0', 'c0'))
    assert s.waiting() == [0, 1, 2] and s.matched == 1
    # too far apart: no set; the next stamp matches, the stale image is dropped
    assert s.add(1, 180 * MS, 'b1') is None
    assert s.add(0, 200 * MS, 'a2') is None
    assert s.add(2, 201 * MS, 'c2') is None
    assert s.add(1, 199 * MS, 'b2') == (200 * MS, ('a2', 'b2', 'c2'))
    assert s.dropped == 1                        # b1
    # of two complete sets the newest wins, the older is dropped with it
    for t in (300, 400):
        s.add(1, t * MS, f'b{t}')
        s.add(2, t * MS, f'c{t}')
    assert s.add(0, 400 * MS, 'a400') == (400 * MS, ('a400', 'b400', 'c400'))
    assert s.add(0, 300 * MS, 'a300') is None     # late: its partners went with the 400 set
    assert s.dropped == 3                         # b1, b300, c300
    with pytest.raises(ValueError):
        StampSync(cameras=0, tolerance_ns=0)
