"""Appearance presets: 'default' keeps today's bytes, the others look measurably different."""

from dataclasses import replace
import hashlib
import json

import cv2
import numpy as np
import pytest

from ciper_ros.cli.synth import APPEARANCE_PRESETS, HELD_OUT_APPEARANCE
from ciper_ros.maps import open_store
from ciper_ros.synth.appearance import (
    aerial_capture,
    AerialSampler,
    AppearancePreset,
    get_preset,
    HELD_OUT_PRESET,
    preset_for_seed,
    PRESETS,
    TRAINING_PRESETS,
)
from ciper_ros.synth.city import generate_city
from ciper_ros.synth.folder import write_city_folder
from ciper_ros.synth.preview import appearance_sheet
from ciper_ros.synth.render import CameraPose, GroundRenderer
from ciper_ros.synth.world import CityConfig, World
from ciper_ros.util.errors import UserError

# recorded with the code before presets existed: a 150 m city at seed 3, zoom 19 map
BEFORE = {
    # store.crop at (5, -3) m, 60 m side, 128 px (JPEG tiles)
    'aerial_crop': 'dd30fce813144a9bf21be237f86e02a70355d7479707b24f7dd1b39b66bec122',
    # AerialSampler on a 0.5 m grid, 60 m around the datum, seed-drawn aerial capture
    'aerial_sampler': '6c39f8e3aca9dc91929f5cc4f4d20519039afd3250579f5b3f417db97d807f82',
    # GroundRenderer(epoch=1) panorama 256 x 64 at (5, -3) m, yaw 0.7 rad (numba and numpy)
    'panorama': '24af1dc9c9db1604e7ef37481839ec2dc48b31d9558dae24babc90514001299a',
}
POSE = CameraPose(5.0, -3.0, 0.7)
SEED, SIZE_M = 3, 150.0


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope='module')
def base() -> World:
    return generate_city(CityConfig(seed=SEED, size_m=SIZE_M))


def as_preset(world: World, name: str) -> World:
    """Return the same geometry under preset ``name`` (generation does not depend on it)."""
    return replace(world, config=replace(world.config, appearance=name), _car_layers={})


def aerial(world: World) -> np.ndarray:
    """Render a 60 m aerial crop at 0.25 m/px around (5, -3) m, (240, 240, 3) uint8."""
    off = (np.arange(240) + 0.5) * 0.25 - 30.0
    east, north = np.meshgrid(5.0 + off, -3.0 - off)
    return AerialSampler(world, aerial_capture(world))(east, north, 0.25)


@pytest.fixture(scope='module')
def views(base):
    """Aerial crop and panorama (with labels) of the city under every preset."""
    out = {}
    for name in PRESETS:
        w = as_preset(base, name)
        pano, lab = GroundRenderer(w, epoch=1).panorama(POSE, width=256, height=64,
                                                         labels=True)
        out[name] = (aerial(w), pano, lab)
    return out


# ------------------------------------------------------------------ default is unchanged
def test_default_is_byte_identical_to_before_presets(tmp_path):
    world, _ = write_city_folder(tmp_path, CityConfig(seed=SEED, size_m=SIZE_M), zooms=(19,),
                                 progress=False)
    world = World.load(tmp_path / 'city.npz')
    assert world.config.appearance == 'default'
    with open_store(tmp_path / 'aerial.mbtiles') as store:
        lat, lon = world.plane.latlon_from_xy_m(np.array([5.0, -3.0]))[0]
        assert sha(store.crop((lat, lon), 60.0, 128).image_rgb) == BEFORE['aerial_crop']
    e, n = np.meshgrid(np.arange(-30, 30, 0.5), np.arange(30, -30, -0.5))
    sampler = AerialSampler(world, aerial_capture(world), epoch=0)
    assert sha(sampler(e, n, 0.5)) == BEFORE['aerial_sampler']
    for use_numba in (True, False):
        pano = GroundRenderer(world, epoch=1, use_numba=use_numba).panorama(POSE, width=256,
                                                                           height=64)
        assert sha(pano) == BEFORE['panorama'], use_numba


# ------------------------------------------------------------------ the presets
def test_the_preset_table():
    assert len(PRESETS) >= 6 and 'default' in PRESETS
    assert all(isinstance(p, AppearancePreset) and p.name == n for n, p in PRESETS.items())
    assert HELD_OUT_PRESET in PRESETS and HELD_OUT_PRESET not in TRAINING_PRESETS
    assert set(TRAINING_PRESETS) == set(PRESETS) - {HELD_OUT_PRESET}
    # the CLI spells the names out (no numpy in --help): they must agree
    assert APPEARANCE_PRESETS == tuple(PRESETS) and HELD_OUT_APPEARANCE == HELD_OUT_PRESET
    assert all(p.aerial_degrade >= 1.0 for p in PRESETS.values())


def test_preset_for_seed_is_deterministic_and_covers_the_training_presets():
    picks = [preset_for_seed(s) for s in range(1000, 1100)]
    assert picks == [preset_for_seed(s) for s in range(1000, 1100)]
    assert set(picks) <= set(TRAINING_PRESETS) and len(set(picks)) >= 4
    assert HELD_OUT_PRESET not in picks
    assert {preset_for_seed(s, presets=('autumn', 'provider_b')) for s in range(40)} == \
        {'autumn', 'provider_b'}


def test_unknown_names_are_a_user_error_listing_the_presets():
    for make in (lambda: CityConfig(appearance='sunny'), lambda: get_preset('sunny'),
                 lambda: preset_for_seed(3, presets=('default', 'sunny'))):
        with pytest.raises(UserError, match='sunny.*default, summer_noon'):
            make()


def test_every_preset_renders_and_differs_measurably_from_default(views):
    a0, p0, lab0 = views['default']
    for name, (a, p, lab) in views.items():
        assert a.shape == (240, 240, 3) and p.shape == (64, 256, 3), name
        # geometry is shared: the panorama sees the same objects in the same pixels
        assert np.array_equal(lab, lab0), name
        if name == 'default':
            continue
        assert np.abs(a.astype(float) - a0).mean() > 10.0, name   # mean abs diff, 0-255
        if name != 'provider_b':   # provider_b changes the aerial provider only
            assert np.abs(p.astype(float) - p0).mean() > 10.0, name
    assert np.array_equal(views['provider_b'][1], p0)


def _saturation(img):
    return float(cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1].mean())


def _sharpness(img):
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32),
                               cv2.CV_32F).var())


def test_presets_change_what_they_claim(views):
    a0 = views['default'][0]
    # another provider: more blur at half the resolution, warmer
    assert _sharpness(views['provider_b'][0]) < 0.25 * _sharpness(a0)
    b = views['provider_b'][0].reshape(-1, 3).mean(0) - a0.reshape(-1, 3).mean(0)
    assert b[0] > b[2] + 5.0
    # the held-out provider is softer too; winter is greyer, summer crisper
    assert _sharpness(views['dry_south'][0]) < 0.5 * _sharpness(a0)
    assert _saturation(views['winter_overcast'][0]) < _saturation(a0) - 5.0
    assert _sharpness(views['summer_noon'][0]) > 2.0 * _sharpness(a0)
    # evening ground views: warm light (red over blue)
    p = views['evening_low_sun'][1].reshape(-1, 3).mean(0)
    assert p[0] > p[2] + 15.0


def test_a_city_folder_with_a_preset_keeps_it(tmp_path):
    cfg = CityConfig(seed=SEED, size_m=100.0, appearance='provider_b')
    write_city_folder(tmp_path, cfg, zooms=(18,), progress=False)
    world = World.load(tmp_path / 'city.npz')
    assert world.config == cfg
    with open_store(tmp_path / 'aerial.mbtiles') as store:
        lat, lon = world.plane.latlon_from_xy_m(np.zeros(2))[0]
        crop = store.crop((lat, lon), 40.0, 64).image_rgb
    assert crop.shape == (64, 64, 3) and crop.std() > 5.0


def test_an_old_world_file_without_the_field_loads_as_default(base, tmp_path):
    path = as_preset(base, 'autumn').save(tmp_path / 'city.npz')
    with np.load(path) as npz:
        z = {k: npz[k] for k in npz.files}
    meta = json.loads(bytes(z['meta_json']).decode())
    assert meta['config'].pop('appearance') == 'autumn'
    z['meta_json'] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **z)
    old = World.load(path)
    assert old.config.appearance == 'default' and old.config.seed == SEED
    assert np.array_equal(old.kind, base.kind)


def test_the_contact_sheet_shows_every_preset():
    img = appearance_sheet(size_m=100.0, xy_m=(5.0, -3.0), row_px=32, crop_side_m=20.0,
                           presets=('default', 'dry_south'))
    assert img.dtype == np.uint8 and img.shape == (2 * 32 + 6, 104 + 32 + 6 + 128, 3)
    top, bottom = img[:32], img[38:]
    assert np.abs(top.astype(float) - bottom).mean() > 5.0
