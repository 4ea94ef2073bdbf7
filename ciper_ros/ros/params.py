"""The localize node's parameters: one typed definition.

Defaults are mirrored in config/localize.yaml (a test keeps them equal); values are
validated with a message naming the parameter. No rclpy here: the node declares these with
``declare_parameters``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import math

from ciper_ros.util.config import unknown_keys
from ciper_ros.util.errors import UserError

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')


class ParameterError(UserError):
    """A parameter value the node cannot start with (the message names the parameter)."""


@dataclass(frozen=True)
class NodeParams:
    model: str = ''                      # checkpoint; '' = the shipped default model
    index: str = ''                      # tile index directory (ciper index build): required
    map: str = ''                        # map store; '' = the one the index was built from
    backend: str = 'torch'               # torch | onnxruntime | tensorrt
    export_dir: str = ''                 # ONNX export (onnxruntime / tensorrt backends)
    device: str = 'cpu'                  # torch device (torch backend)
    calibration: str = ''                # covariance scales from `ciper calibrate`
    image_topic: str = 'image'
    compressed: bool = False             # subscribe to <image_topic>/compressed
    camera_info_topic: str = 'camera_info'
    gnss_topic: str = 'gnss/fix'
    odom_topic: str = ''                 # '' = no odometry: TF goes to debug_child_frame
    publish_tf: bool = True              # off when robot_localization owns map->odom
    map_frame: str = 'map'
    odom_frame: str = 'odom'
    base_frame: str = 'base_link'
    debug_child_frame: str = 'ciper_base_link'
    camera_x_m: float = 0.0              # base_link -> camera when /tf_static has none
    camera_y_m: float = 0.0
    camera_z_m: float = 1.6
    camera_yaw_rad: float = 0.0
    top_k: int = 9                       # candidate tiles decoded per frame
    max_fix_age_s: float = 1.0           # a fix older than this (image stamp) is stale
    default_fix_sigma_m: float = 5.0     # when a fix reports no covariance
    max_speed_mps: float = 15.0          # a fix's sigma grows by this times its age
    max_prior_sigma_m: float = 15.0      # broader priors: the frame is rejected
    gate_sigmas: float = 4.0             # reject estimates farther from the prior
    cache_mb: float = 64.0               # aerial encodings of recently used tiles
    diagnostics_period_s: float = 1.0

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: dict) -> NodeParams:
        known = {f.name: f for f in fields(cls)}
        unknown = unknown_keys(cls, values)
        if unknown:
            raise ParameterError(f'unknown parameter(s) {unknown}')
        typed = {}
        for name, value in values.items():
            want = type(known[name].default)
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise ParameterError(f"parameter '{name}' must be {want.__name__}, got "
                                     f'{value!r}')
            typed[name] = value
        params = cls(**typed)
        params.validate()
        return params

    def localizer_args(self) -> dict:
        """Keyword arguments of ``runtime.assemble.open_localizer`` for these parameters."""
        from ciper_ros.runtime.localizer import LocalizerConfig

        return {'index': self.index, 'model': self.model or None, 'map_path': self.map or None,
                'backend': self.backend, 'export_dir': self.export_dir or None,
                'device': self.device, 'calibration': self.calibration or None,
                'config': LocalizerConfig(top_k=self.top_k, gate_sigmas=self.gate_sigmas,
                                          cache_mb=self.cache_mb)}

    def fix_policy(self):
        """Return the GNSS prior rule (:class:`ciper_ros.runtime.gnss.FixPolicy`) they set."""
        from ciper_ros.runtime.gnss import FixPolicy

        return FixPolicy(max_fix_age_s=self.max_fix_age_s,
                         default_fix_sigma_m=self.default_fix_sigma_m,
                         max_speed_mps=self.max_speed_mps,
                         max_prior_sigma_m=self.max_prior_sigma_m)

    def validate(self) -> None:
        def bad(name: str, why: str) -> ParameterError:
            return ParameterError(f"parameter '{name}' {why} (got {getattr(self, name)!r})")

        if not self.index:
            raise bad('index', 'must name a tile index directory (ciper index build)')
        if self.backend not in BACKENDS:
            raise bad('backend', f'must be one of {BACKENDS}')
        if self.backend != 'torch' and not self.export_dir:
            raise bad('export_dir', f'is needed by the {self.backend} backend (ciper export)')
        for name in ('image_topic', 'camera_info_topic', 'gnss_topic', 'map_frame',
                     'odom_frame', 'base_frame', 'debug_child_frame'):
            if not getattr(self, name):
                raise bad(name, 'must not be empty')
        for name in ('camera_x_m', 'camera_y_m', 'camera_z_m', 'camera_yaw_rad'):
            if not math.isfinite(getattr(self, name)):
                raise bad(name, 'must be finite')
        if not 1 <= self.top_k <= 64:
            raise bad('top_k', 'must be in 1..64')
        for name in ('max_fix_age_s', 'default_fix_sigma_m', 'max_prior_sigma_m',
                     'gate_sigmas', 'diagnostics_period_s'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise bad(name, 'must be a positive number')
        for name in ('cache_mb', 'max_speed_mps'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise bad(name, 'must be >= 0')
