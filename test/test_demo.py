"""`ciper demo` end to end: writes the map, crops it, and every marker lands within 1 px."""

import json

from ciper_ros.demo import run_demo


def test_demo_runs_and_geolocates(tmp_path):
    metrics = run_demo(tmp_path, size_m=200.0, zooms=(18, 19))
    assert metrics['markers_checked'] > 200
    assert metrics['marker_error_px_max'] <= 1.0
    assert metrics['marker_error_within_1px'] == 1.0
    assert (tmp_path / 'crops.png').stat().st_size > 10_000
    assert json.loads((tmp_path / 'metrics.json').read_text()) == metrics
    # resumable/idempotent: a second run reuses the finished map
    again = run_demo(tmp_path, size_m=200.0, zooms=(18, 19))
    assert again['marker_error_px_max'] == metrics['marker_error_px_max']
