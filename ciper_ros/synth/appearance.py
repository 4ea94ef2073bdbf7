"""How the city looks: surface colours, textures, sun and shadows, camera colour response.

Aerial and ground images share only geometry and the painted ground (markings, asphalt
texture): roofs are only seen from above and facades only from the street, with colours
drawn independently; every capture has its own sun, shadows and colour response.

A city's :class:`AppearancePreset` (``CityConfig.appearance``, one of :data:`PRESETS`) sets
the ranges those conditions are drawn from (sun, season, palettes, road wear, the aerial
provider's colour response, blur and resolution); ``'default'`` is the original look, byte
for byte. Presets change colours and light only, never geometry: the same seed gives the
same roads, markings and footprints under every preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import zlib

import cv2
import numpy as np

from ciper_ros.synth.world import Kind, World
from ciper_ros.util.errors import UserError

# base colour of each surface kind (RGB, 0-255), indexed by Kind
GROUND_RGB = np.zeros((16, 3), np.float32)
GROUND_RGB[Kind.OUT] = (90, 130, 65)
GROUND_RGB[Kind.ROAD] = (72, 72, 76)
GROUND_RGB[Kind.LANE_MARK] = (228, 228, 222)
GROUND_RGB[Kind.CENTER_MARK] = (225, 185, 45)
GROUND_RGB[Kind.CROSSWALK] = (232, 232, 226)
GROUND_RGB[Kind.SIDEWALK] = (172, 168, 160)
GROUND_RGB[Kind.GRASS] = (88, 132, 62)
GROUND_RGB[Kind.PLAZA] = (182, 170, 150)
GROUND_RGB[Kind.PARKING] = (84, 84, 88)
GROUND_RGB[Kind.PARKING_MARK] = (225, 225, 220)
GROUND_RGB[Kind.BUILDING] = (128, 128, 128)
GROUND_RGB[Kind.TREE] = (70, 115, 50)


@dataclass(frozen=True)
class Sun:
    """Sun direction: azimuth REP-103 (CCW from east) and elevation above the horizon."""

    azimuth_rad: float
    elevation_rad: float

    @property
    def direction(self) -> np.ndarray:
        """Unit vector towards the sun, ENU."""
        ce = math.cos(self.elevation_rad)
        return np.array([ce * math.cos(self.azimuth_rad), ce * math.sin(self.azimuth_rad),
                         math.sin(self.elevation_rad)])


RGB = tuple[float, float, float]
Range = tuple[float, float]


@dataclass(frozen=True)
class CaptureLook:
    """Ranges one capture's conditions are drawn from (uniform unless noted).

    ``sun_azimuth_deg``: REP-103 (CCW from east, degrees) range, or ``'any'``;
    ``sun_elevation_deg``: above the horizon (shadows are cast from at least 5 degrees);
    ``ambient``: light in full shadow as a fraction of full sun (shadow strength: 0.3 is a
    hard-shadowed clear day, 0.85 an overcast one); ``gain``: per-channel diagonal of the
    3x3 colour matrix, ``matrix_sigma``: std of its off-diagonal cross-talk (colour
    response jitter); ``tint_rgb``: white balance, multiplies the matrix's rows (1 = neutral);
    ``gamma``: exponent on [0, 1] RGB (> 1 darker mid-tones); ``haze_max``: additive
    veil per channel, drawn in [0, haze_max] (fraction of full scale).
    """

    sun_elevation_deg: Range
    sun_azimuth_deg: Range | str = 'any'
    ambient: Range = (0.45, 0.6)
    gain: Range = (0.9, 1.1)
    matrix_sigma: float = 0.03
    tint_rgb: RGB = (1.0, 1.0, 1.0)
    gamma: Range = (0.85, 1.15)
    haze_max: float = 0.06

    def __post_init__(self) -> None:
        lo, hi = self.sun_elevation_deg
        if not 0.0 < lo <= hi <= 90.0:
            raise UserError(f'sun elevation range must be in (0, 90] deg, got {lo}-{hi}')
        if not (self.sun_azimuth_deg == 'any' or isinstance(self.sun_azimuth_deg, tuple)):
            raise UserError(f"sun azimuth must be a (lo, hi) range in deg or 'any', got "
                            f'{self.sun_azimuth_deg!r}')
        if not 0.0 <= self.ambient[0] <= self.ambient[1] <= 1.0:
            raise UserError(f'ambient range must be in [0, 1], got {self.ambient}')


AERIAL_LOOK = CaptureLook(sun_elevation_deg=(30.0, 65.0))
GROUND_LOOK = CaptureLook(sun_elevation_deg=(20.0, 60.0))


@dataclass(frozen=True)
class Capture:
    """One capture's conditions: sun, colour response, haze (aerial or a drive)."""

    sun: Sun
    color_matrix: np.ndarray  # (3, 3) applied to linear-ish RGB in [0, 1]
    gamma: float
    ambient: float
    haze_rgb: tuple[float, float, float]

    @classmethod
    def random(cls, rng: np.random.Generator, *, aerial: bool) -> Capture:
        """Draw the original (``'default'`` preset) aerial or ground conditions."""
        return cls.draw(rng, AERIAL_LOOK if aerial else GROUND_LOOK)

    @classmethod
    def draw(cls, rng: np.random.Generator, look: CaptureLook) -> Capture:
        """Draw one capture's conditions from ``look`` (same draws in the same order always)."""
        if look.sun_azimuth_deg == 'any':
            az = rng.uniform(-math.pi, math.pi)
        else:
            az = math.radians(rng.uniform(*look.sun_azimuth_deg))
        sun = Sun(az, math.radians(rng.uniform(*look.sun_elevation_deg)))
        m = np.eye(3) * rng.uniform(*look.gain, 3) + rng.normal(0, look.matrix_sigma, (3, 3))
        if look.tint_rgb != (1.0, 1.0, 1.0):
            m = np.asarray(look.tint_rgb)[:, None] * m   # white balance: output channel gains
        return cls(sun=sun, color_matrix=m, gamma=float(rng.uniform(*look.gamma)),
                   ambient=float(rng.uniform(*look.ambient)),
                   haze_rgb=tuple(rng.uniform(0.0, look.haze_max, 3)))

    def respond(self, rgb01: np.ndarray) -> np.ndarray:
        """Apply the camera's colour response to (..., 3) RGB in [0, 1]; returns uint8."""
        out = rgb01 @ self.color_matrix.T.astype(np.float32) + np.float32(self.haze_rgb)
        out = np.clip(out, 0.0, 1.0) ** np.float32(self.gamma)
        return (out * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Palette:
    """How building colours are drawn: a list of base colours with jitter, then graded.

    ``base_rgb``: base colours (0-255) drawn uniformly per building, each channel jittered by
    an integer in [-jitter, jitter]; ``None`` keeps the generator's own colour (its palette in
    ``synth/city.py``). ``saturation`` scales the distance from grey (1 = unchanged, 0 = grey),
    ``brightness`` multiplies the result.
    """

    base_rgb: tuple[RGB, ...] | None = None
    jitter: int = 18
    saturation: float = 1.0
    brightness: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.base_rgb is None and self.saturation == 1.0 and self.brightness == 1.0

    def apply(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Colours for (B, 3) uint8 generator colours ``rgb``; returns (B, 3) uint8."""
        if self.is_identity:
            return rgb
        c = rgb.astype(np.float64)
        if self.base_rgb is not None:
            base = np.asarray(self.base_rgb, np.float64)
            c = base[rng.integers(len(base), size=len(rgb))] + \
                rng.integers(-self.jitter, self.jitter + 1, (len(rgb), 3))
        grey = c.mean(axis=-1, keepdims=True)
        c = (grey + self.saturation * (c - grey)) * self.brightness
        return np.clip(np.round(c), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Vegetation:
    """Season: colour of lawns / open land (GRASS, OUT) and of tree crowns.

    A colour ``c`` (0-255) becomes ``c * gain_rgb + shift_rgb``. Trees vary: each crown moves
    a random fraction in [1 - tree_variety, 1] of the way (0 = all alike, 0.6 = autumn's mix
    of still-green and turned trees).
    """

    grass_gain_rgb: RGB = (1.0, 1.0, 1.0)
    grass_shift_rgb: RGB = (0.0, 0.0, 0.0)
    tree_gain_rgb: RGB = (1.0, 1.0, 1.0)
    tree_shift_rgb: RGB = (0.0, 0.0, 0.0)
    tree_variety: float = 0.0

    @property
    def is_identity(self) -> bool:
        one, zero = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
        return (self.grass_gain_rgb == one and self.grass_shift_rgb == zero
                and self.tree_gain_rgb == one and self.tree_shift_rgb == zero)

    def trees(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Crown colours for (T, 3) uint8 generator colours; returns (T, 3) uint8."""
        if self.is_identity:
            return rgb
        c = rgb.astype(np.float64)
        target = c * np.asarray(self.tree_gain_rgb) + np.asarray(self.tree_shift_rgb)
        f = rng.uniform(1.0 - self.tree_variety, 1.0, (len(rgb), 1))
        return np.clip(np.round(c + f * (target - c)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class AppearancePreset:
    """A named look of a city and its imagery: what varies between real cities and providers.

    Geometry (roads, markings, footprints, heights) never depends on the preset.

    - ``aerial`` / ``ground``: sun, shadow strength (ambient) and colour response of the
      aerial capture and of every drive (:class:`CaptureLook`).
    - ``aerial_blur_px``: Gaussian sigma of the aerial optics (output pixels);
      ``aerial_degrade``: the provider's ground sampling distance as a multiple of the
      rendered one (>= 1; 2 = rendered at half the resolution and upsampled back).
    - ``facade`` / ``roof``: building colour palettes (:class:`Palette`).
    - ``vegetation``: season (:class:`Vegetation`).
    - ``asphalt_gain``: multiplies road and parking asphalt (> 1: sun-bleached, < 1: fresh or
      wet); ``marking_fade``: 0 = fresh paint, 1 = markings the colour of the asphalt;
      ``pavement_gain``: multiplies sidewalks and plazas.
    - ``sky_top_rgb`` / ``sky_horizon_rgb``: ground-view sky in [0, 1]; ``fog_m``: distance
      at which ground views have faded 63 % into the horizon colour (m).
    """

    name: str
    summary: str
    aerial: CaptureLook = AERIAL_LOOK
    ground: CaptureLook = GROUND_LOOK
    aerial_blur_px: float = 0.7
    aerial_degrade: float = 1.0
    facade: Palette = field(default_factory=Palette)
    roof: Palette = field(default_factory=Palette)
    vegetation: Vegetation = field(default_factory=Vegetation)
    asphalt_gain: float = 1.0
    marking_fade: float = 0.0
    pavement_gain: float = 1.0
    sky_top_rgb: RGB = (0.35, 0.55, 0.85)
    sky_horizon_rgb: RGB = (0.78, 0.84, 0.9)
    fog_m: float = 250.0

    def __post_init__(self) -> None:
        if self.aerial_degrade < 1.0:
            raise UserError(f'aerial_degrade must be >= 1, got {self.aerial_degrade}')
        if not 0.0 <= self.marking_fade <= 0.6:
            raise UserError('marking_fade must be in [0, 0.6] (markings must stay visible), '
                            f'got {self.marking_fade}')
        if self.aerial_blur_px < 0 or self.fog_m <= 0:
            raise UserError('aerial_blur_px must be >= 0 and fog_m > 0')

    def ground_rgb(self) -> np.ndarray:
        """(16, 3) float32 base colour per :class:`Kind` (0-255): GROUND_RGB under the preset."""
        if (self.vegetation.grass_gain_rgb == (1.0, 1.0, 1.0)
                and self.vegetation.grass_shift_rgb == (0.0, 0.0, 0.0)
                and self.asphalt_gain == 1.0 and self.marking_fade == 0.0
                and self.pavement_gain == 1.0):
            return GROUND_RGB
        p = GROUND_RGB.copy()
        veg = self.vegetation
        for k in (Kind.GRASS, Kind.OUT):
            p[k] = p[k] * np.float32(veg.grass_gain_rgb) + np.float32(veg.grass_shift_rgb)
        for k in (Kind.ROAD, Kind.PARKING):
            p[k] *= np.float32(self.asphalt_gain)
        for k in (Kind.SIDEWALK, Kind.PLAZA):
            p[k] *= np.float32(self.pavement_gain)
        f = np.float32(self.marking_fade)
        for k in (Kind.LANE_MARK, Kind.CENTER_MARK, Kind.CROSSWALK):
            p[k] += f * (p[Kind.ROAD] - p[k])
        p[Kind.PARKING_MARK] += f * (p[Kind.PARKING] - p[Kind.PARKING_MARK])
        return np.clip(p, 0, 255).astype(np.float32)


# Looks of the presets' cameras (see docs/synthetic_city.md for what motivates each)
_WARM = (1.1, 1.0, 0.86)
PRESETS: dict[str, AppearancePreset] = {p.name: p for p in (
    AppearancePreset(name='default', summary='the original look: temperate, sun anywhere '
                     '30-65 deg, mild shadows, neutral provider'),
    AppearancePreset(
        name='summer_noon', summary='high southern sun, hard short shadows, lush green, '
        'fresh asphalt, crisp imagery',
        aerial=CaptureLook(sun_elevation_deg=(58.0, 70.0), sun_azimuth_deg=(-115.0, -65.0),
                           ambient=(0.36, 0.44), haze_max=0.03),
        ground=CaptureLook(sun_elevation_deg=(50.0, 68.0), sun_azimuth_deg=(-120.0, -60.0),
                           ambient=(0.36, 0.46), haze_max=0.03),
        aerial_blur_px=0.5,
        facade=Palette(saturation=1.15, brightness=1.05),
        roof=Palette(saturation=1.1),
        vegetation=Vegetation(grass_gain_rgb=(0.85, 1.12, 0.8), tree_gain_rgb=(0.85, 1.1, 0.8)),
        asphalt_gain=0.85, sky_top_rgb=(0.25, 0.5, 0.92)),
    AppearancePreset(
        name='autumn', summary='mid-height sun, yellowing lawns, orange and red crowns mixed '
        'with green, slightly warm light',
        aerial=CaptureLook(sun_elevation_deg=(25.0, 42.0), ambient=(0.45, 0.58),
                           tint_rgb=(1.04, 1.0, 0.94)),
        ground=CaptureLook(sun_elevation_deg=(14.0, 35.0), ambient=(0.45, 0.58),
                           tint_rgb=(1.05, 1.0, 0.92)),
        vegetation=Vegetation(grass_gain_rgb=(1.25, 1.0, 0.8), grass_shift_rgb=(10.0, 0.0, 0.0),
                              tree_gain_rgb=(2.6, 1.05, 0.5), tree_shift_rgb=(20.0, 0.0, 0.0),
                              tree_variety=0.7),
        sky_top_rgb=(0.4, 0.55, 0.8), fog_m=200.0),
    AppearancePreset(
        name='winter_overcast', summary='low sun behind cloud: almost no shadows, grey-brown '
        'lawns and bare crowns, grimy markings, cool flat response, grey sky',
        aerial=CaptureLook(sun_elevation_deg=(15.0, 28.0), ambient=(0.8, 0.9),
                           tint_rgb=(0.95, 1.0, 1.07), gamma=(1.0, 1.2), haze_max=0.1),
        ground=CaptureLook(sun_elevation_deg=(8.0, 20.0), ambient=(0.8, 0.9),
                           tint_rgb=(0.94, 1.0, 1.08), gamma=(1.0, 1.2), haze_max=0.1),
        facade=Palette(saturation=0.75, brightness=0.95),
        roof=Palette(saturation=0.7),
        vegetation=Vegetation(grass_gain_rgb=(0.9, 0.6, 0.9), grass_shift_rgb=(40, 32, 30),
                              tree_gain_rgb=(0.9, 0.55, 0.8), tree_shift_rgb=(55, 42, 38)),
        asphalt_gain=0.85, marking_fade=0.3,
        sky_top_rgb=(0.6, 0.62, 0.66), sky_horizon_rgb=(0.78, 0.79, 0.8), fog_m=150.0),
    AppearancePreset(
        name='evening_low_sun', summary='ground views at 5-14 deg western sun: long hard '
        'shadows, warm orange light and sky; aerial from a late-afternoon flight',
        aerial=CaptureLook(sun_elevation_deg=(18.0, 28.0), sun_azimuth_deg=(150.0, 230.0),
                           ambient=(0.4, 0.5), tint_rgb=(1.06, 1.0, 0.9)),
        ground=CaptureLook(sun_elevation_deg=(5.0, 14.0), sun_azimuth_deg=(135.0, 225.0),
                           ambient=(0.32, 0.42), tint_rgb=(1.15, 0.97, 0.76)),
        sky_top_rgb=(0.4, 0.45, 0.7), sky_horizon_rgb=(0.95, 0.78, 0.58)),
    AppearancePreset(
        name='provider_b', summary='another aerial provider: warm tint, brighter mid-tones, '
        'more blur, half the resolution (2x ground sampling distance)',
        aerial=CaptureLook(sun_elevation_deg=(35.0, 60.0), ambient=(0.5, 0.65), gain=(0.95, 1.05),
                           matrix_sigma=0.05, tint_rgb=_WARM, gamma=(0.75, 0.9)),
        aerial_blur_px=1.3, aerial_degrade=2.0),
    AppearancePreset(
        name='dry_south', summary='held out: southern city, high sun and hard shadows, pale '
        'low-saturation facades and terracotta roofs, dry yellow grass, olive trees, bleached '
        'asphalt, dusty hazy provider at 1.6x GSD',
        aerial=CaptureLook(sun_elevation_deg=(55.0, 75.0), ambient=(0.28, 0.36),
                           gain=(0.95, 1.05), matrix_sigma=0.04, tint_rgb=(0.96, 1.0, 1.06),
                           gamma=(1.1, 1.3), haze_max=0.1),
        ground=CaptureLook(sun_elevation_deg=(40.0, 70.0), ambient=(0.28, 0.38),
                           tint_rgb=(1.04, 1.0, 0.95), haze_max=0.08),
        aerial_blur_px=1.0, aerial_degrade=1.6,
        facade=Palette(base_rgb=((232, 224, 208), (218, 196, 158), (204, 160, 120),
                                 (226, 212, 184), (192, 178, 154), (240, 236, 226)),
                       jitter=12, saturation=0.7),
        roof=Palette(base_rgb=((176, 98, 70), (190, 116, 84), (204, 198, 188),
                               (162, 150, 134), (152, 88, 62)), jitter=12, saturation=0.75),
        vegetation=Vegetation(grass_gain_rgb=(1.6, 1.05, 1.3), grass_shift_rgb=(8, 0, 0),
                              tree_gain_rgb=(1.0, 0.88, 1.1), tree_shift_rgb=(12, 8, 6),
                              tree_variety=0.3),
        asphalt_gain=1.3, marking_fade=0.35, pavement_gain=1.08,
        sky_top_rgb=(0.45, 0.62, 0.85), sky_horizon_rgb=(0.85, 0.86, 0.84), fog_m=220.0),
)}
HELD_OUT_PRESET = 'dry_south'
TRAINING_PRESETS: tuple[str, ...] = tuple(n for n in PRESETS if n != HELD_OUT_PRESET)


def get_preset(name: str) -> AppearancePreset:
    """Look up the preset called ``name``; a :class:`UserError` lists the names if none."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise UserError(f'unknown appearance preset {name!r}; one of: '
                        f'{", ".join(PRESETS)}') from None


def preset_for_seed(seed: int, *, presets: tuple[str, ...] = TRAINING_PRESETS) -> str:
    """Pick one of ``presets`` for a city seed, deterministically (randomized training cities)."""
    names = tuple(presets)
    if not names:
        raise UserError('preset_for_seed needs at least one preset name')
    for n in names:
        get_preset(n)
    return names[int(np.random.default_rng([int(seed), 0xA99E]).integers(len(names)))]


def object_colours(world: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(facade (B, 3), roof (B, 3), crown (T, 3)) uint8 colours of ``world`` under its preset.

    The world's tables hold the generator's colours; the preset redraws or grades them,
    deterministically per (city seed, preset). ``'default'`` returns the tables themselves.
    """
    p = get_preset(world.config.appearance)
    rng = np.random.default_rng([world.config.seed, 0xC010, zlib.crc32(p.name.encode())])
    b = world.buildings
    facade = p.facade.apply(b.facade_rgb, rng)
    roof = p.roof.apply(b.roof_rgb, rng)
    return facade, roof, p.vegetation.trees(world.trees.rgb, rng)


def aerial_capture(world: World) -> Capture:
    """Draw the aerial capture's conditions from the city seed and its preset's look."""
    return Capture.draw(np.random.default_rng([world.config.seed, 0xAE71A]),
                        get_preset(world.config.appearance).aerial)


class Textures:
    """Tileable value-noise textures in world metres, deterministic per city seed."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x7E47])
        self.fine = self._noise(rng, 32, 256)    # 0.1 m per texel: 25.6 m period
        self.coarse = self._noise(rng, 16, 256)  # 1.0 m per texel: 256 m period
        self.fine_m, self.coarse_m = 0.1, 1.0

    @staticmethod
    def _noise(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
        base = rng.random((cells, cells)).astype(np.float32)
        tiled = np.tile(base, (3, 3))
        big = cv2.resize(tiled, (size * 3, size * 3), interpolation=cv2.INTER_CUBIC)
        return np.clip(big[size:2 * size, size:2 * size], 0.0, 1.0)

    def sample(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fine and coarse noise in [0, 1] at ENU points (nearest texel, wrapping)."""
        n = self.fine.shape[0]  # a power of two: wrap with a bit mask
        m = n - 1
        fx = np.floor(x_m * (1.0 / self.fine_m)).astype(np.int64) & m
        fy = np.floor(y_m * (1.0 / self.fine_m)).astype(np.int64) & m
        cx = np.floor(x_m * (1.0 / self.coarse_m)).astype(np.int64) & m
        cy = np.floor(y_m * (1.0 / self.coarse_m)).astype(np.int64) & m
        return (np.take(self.fine.ravel(), fy * n + fx),
                np.take(self.coarse.ravel(), cy * n + cx))


def ground_rgb01(kind: np.ndarray, x_m: np.ndarray, y_m: np.ndarray,
                 tex: Textures, *, palette: np.ndarray = GROUND_RGB) -> np.ndarray:
    """Painted ground colour (the part both views share), (..., 3) in [0, 1].

    ``palette``: (16, 3) base colour per :class:`Kind` (0-255), e.g. a preset's
    :meth:`AppearancePreset.ground_rgb`.
    """
    fine, coarse = tex.sample(x_m, y_m)
    base = palette[kind] / 255.0
    mod = (0.86 + 0.28 * fine) * (0.9 + 0.2 * coarse)
    out = base * mod[..., None]
    grass = (kind == Kind.GRASS) | (kind == Kind.OUT)
    if np.any(grass):
        # dry and lush patches shift the hue of lawns
        out[grass] += (coarse[grass, None] - 0.5) * np.float32([0.12, 0.06, -0.02])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def shadow_mask(height_m: np.ndarray, res_m: float, sun: Sun, *,
                factor: int = 2) -> np.ndarray:
    """Cast-shadow mask of a height map at ``factor`` times coarser resolution (uint8 0/1).

    Horizon by doubling: after the pass with shift k every pixel holds the highest
    ``H(p + j d) - j step tan(elevation)`` for j < 2k, so ``log2(length)`` full-raster passes
    replace a march of ``length`` steps.
    """
    h = height_m.astype(np.float32)
    if factor > 1:
        n = (h.shape[0] // factor) * factor
        h = h[:n, :n].reshape(n // factor, factor, n // factor, factor).max(axis=(1, 3))
    step = res_m * factor
    tan_el = math.tan(max(sun.elevation_rad, math.radians(5)))
    d_col, d_row = math.cos(sun.azimuth_rad), -math.sin(sun.azimuth_rad)
    max_len_px = float(h.max()) / tan_el / step if h.size else 0.0
    horizon = h.copy()
    k = 1
    while k <= max(max_len_px, 1):
        M = np.float32([[1, 0, k * d_col], [0, 1, k * d_row]])
        shifted = cv2.warpAffine(horizon, M, (h.shape[1], h.shape[0]),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        np.maximum(horizon, shifted - np.float32(k * step * tan_el), out=horizon)
        k *= 2
    return (horizon > h + 0.3).astype(np.uint8)


def hillshade(dz_dx: np.ndarray, dz_dy: np.ndarray, sun: Sun) -> np.ndarray:
    """Lambert factor of a height field's surface normal towards the sun, clipped to [0, 1]."""
    s = sun.direction
    nz = 1.0 / np.sqrt(1.0 + dz_dx ** 2 + dz_dy ** 2)
    return np.clip((-dz_dx * s[0] - dz_dy * s[1] + s[2]) * nz, 0.0, 1.0)


class AerialSampler:
    """ENU sampler for :func:`ciper_ros.maps.write_pyramid`: the orthophoto of a world.

    Top surfaces only (roofs, crowns, car roofs, painted ground) under the capture's sun with
    cast shadows, its colour response and a slight optical blur; JPEG tiles add the
    compression artefacts. Colours, ``blur_px`` (Gaussian sigma, output pixels) and
    ``degrade`` (the provider's ground sampling distance over the requested one, >= 1) come
    from the city's preset unless given.
    """

    def __init__(self, world: World, capture: Capture, *, epoch: int = 0,
                 blur_px: float | None = None, degrade: float | None = None) -> None:
        preset = get_preset(world.config.appearance)
        self.world = world
        self.capture = capture
        self.epoch = epoch
        self.blur_px = preset.aerial_blur_px if blur_px is None else blur_px
        self.degrade = preset.aerial_degrade if degrade is None else degrade
        if self.degrade < 1.0:
            raise UserError(f'aerial degrade must be >= 1, got {self.degrade}')
        self.ground_palette = preset.ground_rgb()
        self.tex = Textures(world.config.seed)
        self.car_layer = world.car_layer(epoch)
        self.car_h = world.car_height_m
        self.car_rgb = world.car_rgb01
        self.shadow_factor = 2
        self.shadow = shadow_mask(world.surface_height_m(epoch), world.res_m, capture.sun,
                                  factor=self.shadow_factor)
        nb = world.n_buildings
        _, roof_rgb, crown_rgb = object_colours(world)
        self.roof_rgb = np.concatenate([[[0, 0, 0]], roof_rgb,
                                        crown_rgb]).astype(np.float32) / 255.0
        self.n_buildings = nb

    def _height(self, row, col, inside):
        h = self.world.height_m[row, col].astype(np.float32)
        h = np.maximum(h, self.car_h[self.car_layer[row, col]])
        return np.where(inside, h, 0.0)

    def __call__(self, east_m: np.ndarray, north_m: np.ndarray,
                 target_m_per_px: float) -> np.ndarray:
        w = self.world
        # a coarser provider: render a margin wide enough for the down- and upsampling
        pad = 3 if self.degrade == 1.0 else 3 + int(math.ceil(2 * self.degrade))
        east = np.pad(east_m, pad, mode='reflect', reflect_type='odd')
        north = np.pad(north_m, pad, mode='reflect', reflect_type='odd')
        row, col, inside = w.index(east, north)
        kind = np.where(inside, w.kind[row, col], Kind.OUT)
        obj = w.obj[row, col].astype(np.int64)
        car = self.car_layer[row, col]
        rgb = ground_rgb01(kind, east, north, self.tex, palette=self.ground_palette)
        fine, _ = self.tex.sample(east * 1.7 + 13.0, north * 1.7 - 7.0)
        top = (kind == Kind.BUILDING) | (kind == Kind.TREE)
        rgb[top] = self.roof_rgb[obj[top]] * (0.85 + 0.3 * fine[top, None])
        rgb[car > 0] = self.car_rgb[car[car > 0]]
        # sun: slope shading (crowns, car and roof edges) and cast shadows
        n = w.size_px
        h0 = self._height(row, col, inside)
        hx = self._height(row, np.minimum(col + 1, n - 1), inside)
        hy = self._height(np.maximum(row - 1, 0), col, inside)
        shade = hillshade((hx - h0) / w.res_m, (hy - h0) / w.res_m, self.capture.sun)
        f = self.shadow_factor
        in_shadow = self.shadow[np.minimum(row // f, self.shadow.shape[0] - 1),
                                np.minimum(col // f, self.shadow.shape[1] - 1)] > 0
        direct = np.where(in_shadow, 0.0, shade / max(math.sin(self.capture.sun.elevation_rad),
                                                     0.2))
        light = self.capture.ambient + (1.0 - self.capture.ambient) * np.clip(direct, 0, 1.3)
        rgb *= light[..., None]
        if self.blur_px > 0:
            rgb = cv2.GaussianBlur(rgb, (0, 0), self.blur_px)
        if self.degrade > 1.0:
            # sensor at degrade x the pixel size (area average), upsampled back by the provider
            h, w_ = rgb.shape[:2]
            small = cv2.resize(rgb, (max(1, round(w_ / self.degrade)),
                                     max(1, round(h / self.degrade))),
                               interpolation=cv2.INTER_AREA)
            rgb = cv2.resize(small, (w_, h), interpolation=cv2.INTER_LINEAR)
        return self.capture.respond(rgb[pad:-pad, pad:-pad])
