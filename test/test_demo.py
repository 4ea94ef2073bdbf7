"""`ciper demo` end to end: map geolocation within 1 px, then the synthetic city and a drive."""

import json

from rosbags.rosbag2 import Reader

from ciper_ros.demo import run_demo


def test_demo_runs_and_geolocates(tmp_path):
    metrics = run_demo(tmp_path, size_m=200.0, zooms=(18, 19))
    assert metrics['markers_checked'] > 200
    assert metrics['marker_error_px_max'] <= 1.0
    assert metrics['marker_error_within_1px'] == 1.0
    assert (tmp_path / 'crops.png').stat().st_size > 10_000
    assert json.loads((tmp_path / 'metrics.json').read_text()) == metrics
    # the synthetic city part: a real bag with 10 Hz camera frames, GNSS errors as configured
    assert metrics['drive_camera_frames'] == 201
    assert 1.0 < metrics['gnss_error_m_median'] < 8.0
    with Reader(tmp_path / 'drive') as reader:
        assert reader.duration / 1e9 >= 19.9
    assert (tmp_path / 'preview.png').stat().st_size > 50_000
    # resumable/idempotent: a second run reuses the finished pattern map
    again = run_demo(tmp_path, size_m=200.0, zooms=(18, 19))
    assert again['tiles_written'] == 0
    assert again['marker_error_px_max'] == metrics['marker_error_px_max']
