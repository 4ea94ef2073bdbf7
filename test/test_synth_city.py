"""Synthetic city: determinism, content, persistence, aerial map."""

import numpy as np
import pytest

from ciper_ros.maps import open_store
from ciper_ros.synth.aerial import write_aerial_map
from ciper_ros.synth.city import generate_city
from ciper_ros.synth.world import CityConfig, Kind, World


@pytest.fixture(scope='module')
def city():
    return generate_city(CityConfig(seed=7, size_m=300.0))


def test_same_seed_same_bytes(city):
    again = generate_city(CityConfig(seed=7, size_m=300.0))
    for name in ('height_m', 'kind', 'obj'):
        assert getattr(city, name).tobytes() == getattr(again, name).tobytes()
    assert city.buildings.roof_rgb.tobytes() == again.buildings.roof_rgb.tobytes()
    assert city.cars.center_xy_m.tobytes() == again.cars.center_xy_m.tobytes()
    other = generate_city(CityConfig(seed=8, size_m=300.0))
    assert city.kind.tobytes() != other.kind.tobytes()


def test_city_has_the_expected_content(city):
    share = np.bincount(city.kind.ravel(), minlength=16) / city.kind.size
    assert share[Kind.ROAD] > 0.08 and share[Kind.SIDEWALK] > 0.02
    assert share[Kind.BUILDING] > 0.05 and share[Kind.TREE] > 0.005
    assert share[Kind.LANE_MARK] + share[Kind.CENTER_MARK] > 0.0005
    assert share[Kind.OUT] == 0.0  # every pixel got a surface
    assert city.n_buildings > 20 and len(city.trees.height_m) > 20
    b = city.buildings
    assert np.all(b.height_m >= 5.0) and np.all(b.half_extent_m > 1.0)
    # roof and facade colours are drawn independently
    assert not np.array_equal(b.roof_rgb, b.facade_rgb)
    # buildings are where their ids are, with their heights
    for i in range(1, min(city.n_buildings, 20) + 1):
        sel = city.obj == i
        if sel.any():
            assert np.all(city.kind[sel] == Kind.BUILDING)
            assert np.allclose(city.height_m[sel].astype(float), b.height_m[i - 1], atol=0.05)
    # the road graph is connected enough to drive
    assert len(city.roads.edges) > 10


def test_parked_cars_differ_between_captures(city):
    aerial = city.car_layer(0) > 0
    drive = city.car_layer(1) > 0
    assert aerial.sum() > 0 and drive.sum() > 0
    overlap = (aerial & drive).sum() / max(aerial.sum(), 1)
    assert 0.1 < overlap < 0.9  # some cars stayed, others left or arrived
    with pytest.raises(ValueError, match='epoch'):
        city.car_layer(5)


def test_save_load_round_trip(city, tmp_path):
    path = city.save(tmp_path / 'city.npz')
    back = World.load(path)
    assert back.config == city.config
    assert np.array_equal(back.kind, city.kind) and np.array_equal(back.obj, city.obj)
    assert np.array_equal(back.buildings.height_m, city.buildings.height_m)
    assert len(back.roads.edge_points_m) == len(city.roads.edge_points_m)
    assert all(np.array_equal(a, b) for a, b in
               zip(back.roads.edge_points_m, city.roads.edge_points_m, strict=True))
    bad = tmp_path / 'bad.npz'
    bad.write_bytes(b'not a city')
    with pytest.raises(ValueError, match='not a ciper synthetic city'):
        World.load(bad)


def test_config_validation():
    with pytest.raises(ValueError, match='size_m'):
        CityConfig(size_m=50.0)
    with pytest.raises(ValueError, match='res_m'):
        CityConfig(res_m=1.0)


def test_aerial_map_is_a_real_web_mercator_map(city, tmp_path):
    path = write_aerial_map(city, tmp_path / 'aerial.mbtiles', zooms=(19,), progress=False)
    with open_store(path) as store:
        meta = store.metadata
        assert meta.zooms == (19,) and meta.format == 'jpg'
        assert meta.extra['ciper_city_seed'] == '7'
        centre = city.plane.latlon_from_xy_m(np.zeros(2))[0]
        crop = store.crop((centre[0], centre[1]), 80.0, 256)
    img = crop.image_rgb.astype(float)
    assert img.std() > 15  # structured, not flat


def test_aerial_shows_roofs_not_facades(city, tmp_path):
    """Across buildings, aerial colour follows the roof colour, not the facade colour."""
    path = write_aerial_map(city, tmp_path / 'aerial.mbtiles', zooms=(19,), progress=False)
    with open_store(path) as store:
        centre = city.plane.latlon_from_xy_m(np.zeros(2))[0]
        crop = store.crop((centre[0], centre[1]), 260.0, 1040)
    img = crop.image_rgb.astype(float)
    uv = crop.uv_px_from_latlon(city.plane.latlon_from_xy_m(city.buildings.center_xy_m))
    seen, roof, facade = [], [], []
    for i, (u, v) in enumerate(uv):
        row, col, inside = city.index(*city.buildings.center_xy_m[i])
        if not inside or city.obj[row, col] != i + 1 or not (3 <= u < 1037 and 3 <= v < 1037):
            continue  # centre not on the roof (L-shaped or clipped footprint) or off the crop
        seen.append(img[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2].reshape(-1, 3).mean(0))
        roof.append(city.buildings.roof_rgb[i])
        facade.append(city.buildings.facade_rgb[i])
    seen, roof, facade = (np.asarray(a, float).ravel() for a in (seen, roof, facade))
    assert len(seen) >= 30
    c_roof = np.corrcoef(seen, roof)[0, 1]
    c_facade = np.corrcoef(seen, facade)[0, 1]
    assert c_roof > 0.5 and c_roof > c_facade + 0.3, (c_roof, c_facade)


@pytest.mark.parametrize('damage', ['truncated', 'zeroed_middle', 'empty'])
def test_a_damaged_city_file_is_reported_as_corrupt(city, tmp_path, damage):
    from ciper_ros.util.errors import CorruptFileError

    data = city.save(tmp_path / 'city.npz').read_bytes()
    bad = tmp_path / 'damaged' / 'city.npz'
    bad.parent.mkdir()
    if damage == 'truncated':          # a copy or a download cut short
        bad.write_bytes(data[:len(data) // 2])
    elif damage == 'zeroed_middle':    # inside an array: found by the member's CRC
        mid = len(data) // 2
        bad.write_bytes(data[:mid] + bytes(256) + data[mid + 256:])
    else:
        bad.write_bytes(b'')
    with pytest.raises(CorruptFileError) as e:
        World.load(bad)
    assert str(e.value).startswith(f'corrupt city file {bad} (')
    assert 'regenerate it' in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(ValueError, match='does not exist'):
        World.load(tmp_path / 'missing.npz')
