"""The localize node's parameters: one typed definition, with descriptions and ranges.

Defaults are mirrored in config/localize.yaml (a test keeps them equal); values are
validated with a message naming the parameter. Each field's metadata gives the description
and range the node declares (so ``ros2 param describe`` says what a parameter is and what it
may be) and whether it may change at run time (``ros2 param set``); the rest are read once at
start-up and declared read-only. No rclpy here: the node declares them from
:func:`describe`, and :func:`check_ros_args` / :func:`parameter_sources` read the command
line's ``--ros-args`` the way rcl does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import math
from pathlib import Path
import re

from ciper_ros.util.config import unknown_keys
from ciper_ros.util.errors import UserError

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')


class ParameterError(UserError):
    """A parameter value the node cannot start with (the message names the parameter)."""


def _p(default, doc: str, *, range_: tuple | None = None, dynamic: bool = False):
    """Declare a parameter field: default, description, inclusive range, run-time settable."""
    return field(default=default, metadata={'doc': doc, 'range': range_, 'dynamic': dynamic})


@dataclass(frozen=True)
class NodeParams:
    model: str = _p('', "checkpoint; '' = the shipped default model")
    index: str = _p('', 'tile index directory (ciper index build): required')
    map: str = _p('', "map store; '' = the one the index was built from")
    backend: str = _p('torch', 'inference backend: torch | onnxruntime | tensorrt')
    export_dir: str = _p('', 'ONNX export (ciper export) for the onnxruntime / tensorrt '
                             'backends')
    device: str = _p('cpu', 'torch device (torch backend), e.g. cpu or cuda:0')
    calibration: str = _p('', 'covariance scales from `ciper calibrate` (JSON)')
    image_topic: str = _p('image', 'camera image topic (sensor_msgs/Image)')
    compressed: bool = _p(False, 'subscribe to <image_topic>/compressed '
                                 '(sensor_msgs/CompressedImage) instead')
    camera_info_topic: str = _p('camera_info', 'sensor_msgs/CameraInfo of the camera')
    rig_image_topics: str = _p('', 'a camera rig instead of image_topic: its image topics, '
                                   "comma-separated; each camera's CameraInfo on the "
                                   'camera_info topic beside its image topic, its mount '
                                   'from /tf_static; the images of one rig frame are '
                                   'matched by stamp within rig_sync_tolerance_s')
    rig_sync_tolerance_s: float = _p(0.02, 'rig images this close in stamp (s) are one frame',
                                     range_=(0.0, 1.0))
    gnss_topic: str = _p('gnss/fix', 'sensor_msgs/NavSatFix GNSS prior')
    odom_topic: str = _p('', "nav_msgs/Odometry for map -> odom; '' = none: TF goes to "
                             'debug_child_frame')
    tracking: bool = _p(True, 'with odom_topic: track over the drive (odometry, GNSS and '
                              'every frame weigh a particle filter); ~/pose is then the '
                              "tracker's estimate at odometry rate, each frame's own on "
                              '~/frame/pose_with_covariance')
    tracker_particles: int = _p(1000, "the tracker's particles", range_=(10, 100000))
    debug_image_side_m: float = _p(80.0, 'side of the map shown on ~/debug/image (m)',
                                   range_=(5.0, 2000.0), dynamic=True)
    debug_image_px: int = _p(512, 'side of ~/debug/image (px)', range_=(64, 2048),
                             dynamic=True)
    publish_tf: bool = _p(True, 'publish map -> odom (or the debug frame) on /tf; off when '
                                'robot_localization owns map -> odom', dynamic=True)
    map_frame: str = _p('map', 'frame of the published poses (ENU at the index datum)')
    odom_frame: str = _p('odom', 'odometry frame (child of map_frame on /tf)')
    base_frame: str = _p('base_link', 'vehicle frame the poses are of')
    debug_child_frame: str = _p('ciper_base_link', 'TF child frame of the pose without '
                                                   'odometry')
    camera_x_m: float = _p(0.0, 'base_link -> camera x (m) when /tf_static has none')
    camera_y_m: float = _p(0.0, 'base_link -> camera y (m) when /tf_static has none')
    camera_z_m: float = _p(1.6, 'base_link -> camera z (m) when /tf_static has none')
    camera_yaw_rad: float = _p(0.0, 'base_link -> camera yaw (rad) when /tf_static has none')
    top_k: int = _p(9, 'candidate tiles decoded per frame', range_=(1, 64), dynamic=True)
    max_fix_age_s: float = _p(1.0, 'a GNSS fix older than this (image stamp) is stale',
                              range_=(0.01, 60.0), dynamic=True)
    default_fix_sigma_m: float = _p(5.0, 'GNSS sigma (m) when a fix reports no covariance',
                                    range_=(0.1, 1000.0), dynamic=True)
    max_speed_mps: float = _p(15.0, "a fix's sigma grows by this times its age (m/s)",
                              range_=(0.0, 100.0), dynamic=True)
    max_prior_sigma_m: float = _p(15.0, 'broader GNSS priors (m): the frame is rejected',
                                  range_=(0.1, 1000.0), dynamic=True)
    camera_info_tolerance_s: float = _p(0.02, 'an image takes the CameraInfo with its stamp, '
                                              'else the latest one at most this much newer '
                                              '(s); the worker waits up to '
                                              'camera_info_wait_s for the one with its stamp',
                                        range_=(0.0, 10.0))
    camera_info_wait_s: float = _p(0.1, 'how long a frame waits for the CameraInfo with its '
                                        'stamp (s)', range_=(0.0, 10.0))
    gate_sigmas: float = _p(4.0, 'reject estimates farther from the prior (sigmas)',
                            range_=(0.1, 100.0), dynamic=True)
    min_match_prob: float = _p(-1.0, 'reject frames whose match probability is below this '
                                     "(-1: the checkpoint's calibrated threshold per camera "
                                     'kind)', range_=(-1.0, 1.0))
    cache_mb: float = _p(64.0, 'aerial encodings of recently used tiles (MiB)',
                         range_=(0.0, 65536.0))
    diagnostics_period_s: float = _p(1.0, '/diagnostics period (s, steady clock)',
                                     range_=(0.01, 60.0))
    tf_rate_hz: float = _p(20.0, 'map -> odom republished at this rate with the latest '
                                 'correction (0 = only after each localized frame)',
                           range_=(0.0, 1000.0))
    transform_tolerance: float = _p(0.5, 'map -> odom is future-dated by this (s), as Nav2 '
                                         'AMCL does, so lookups at the latest odometry '
                                         'succeed between corrections',
                                    range_=(0.0, 10.0), dynamic=True)
    stale_after_s: float = _p(2.0, 'diagnostics WARN / ERROR when images, GNSS fixes or '
                                   'poses are older than this (s)',
                              range_=(0.1, 3600.0), dynamic=True)

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def dynamic_names(cls) -> frozenset[str]:
        """Parameters that take effect when set at run time (the rest are read-only)."""
        return frozenset(f.name for f in fields(cls) if f.metadata['dynamic'])

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
                'min_match_prob': None if self.min_match_prob < 0 else self.min_match_prob,
                'config': LocalizerConfig(top_k=self.top_k, gate_sigmas=self.gate_sigmas,
                                          cache_mb=self.cache_mb)}

    def fix_policy(self):
        """Return the GNSS prior rule (:class:`ciper_ros.runtime.gnss.FixPolicy`) they set."""
        from ciper_ros.runtime.gnss import FixPolicy

        return FixPolicy(max_fix_age_s=self.max_fix_age_s,
                         default_fix_sigma_m=self.default_fix_sigma_m,
                         max_speed_mps=self.max_speed_mps,
                         max_prior_sigma_m=self.max_prior_sigma_m)

    def pipeline_config(self):
        """Return the per-frame settings they set (one place: the node and offline tools)."""
        from ciper_ros.runtime.mount import Mount
        from ciper_ros.runtime.pipeline import PipelineConfig

        return PipelineConfig(fix_policy=self.fix_policy(), base_frame=self.base_frame,
                              mount=Mount(self.camera_x_m, self.camera_y_m,
                                          self.camera_yaw_rad),
                              camera_info_tolerance_s=self.camera_info_tolerance_s)

    def tracker_config(self):
        """Return the tracker's settings (:class:`ciper_ros.runtime.tracker.TrackerConfig`)."""
        from ciper_ros.runtime.tracker import TrackerConfig

        return TrackerConfig(particles=self.tracker_particles)

    def rig_topics(self) -> list[tuple[str, str]]:
        """Give (image topic, CameraInfo topic) per rig camera; [] for one camera.

        CameraInfo sits beside its image topic, as image_transport's camera subscriber
        expects (``front/image_raw`` -> ``front/camera_info``).
        """
        out = []
        for t in (t.strip() for t in self.rig_image_topics.split(',')):
            if t:
                ns = t.rstrip('/').rpartition('/')[0]
                out.append((t, f'{ns}/camera_info' if ns else 'camera_info'))
        return out

    @property
    def tracks(self) -> bool:
        """Whether the node tracks (tracking on, and odometry to track with)."""
        return self.tracking and bool(self.odom_topic)

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
        rig = [t for t, _ in self.rig_topics()]
        if self.rig_image_topics.strip() and len(rig) < 2:
            raise bad('rig_image_topics', 'must name at least two comma-separated image '
                                          "topics ('' for one camera on image_topic)")
        if len(set(rig)) != len(rig):
            raise bad('rig_image_topics', 'names a topic twice')
        for name in ('camera_x_m', 'camera_y_m', 'camera_z_m', 'camera_yaw_rad'):
            if not math.isfinite(getattr(self, name)):
                raise bad(name, 'must be finite')
        for f in fields(self):
            rng = f.metadata['range']
            v = getattr(self, f.name)
            if rng is None:
                continue
            if isinstance(v, int):
                if not rng[0] <= v <= rng[1]:
                    raise bad(f.name, f'must be in {rng[0]}..{rng[1]}')
            elif not (math.isfinite(v) and rng[0] <= v <= rng[1]):
                raise bad(f.name, f'must be in [{rng[0]:g}, {rng[1]:g}]')


def describe(name: str) -> dict:
    """Return the description, inclusive range (or None) and run-time settability of one."""
    f = {f.name: f for f in fields(NodeParams)}[name]
    doc = f.metadata['doc']
    if not f.metadata['dynamic']:
        doc += ' (read at start-up: read-only)'
    return {'description': doc, 'range': f.metadata['range'],
            'dynamic': f.metadata['dynamic']}


# ---------------------------------------------------------------- the command line (rcl's)
# what rcl needs of a rule at least: 'name:=value' or 'node:name:=value', neither part empty
# (rcl checks the rest, e.g. the name's characters, and says so itself)
_RULE = re.compile(r'^(?:(?P<node>[^:=]+):)?(?P<name>[^:=\s][^:=]*):=(?P<value>.+)$',
                   re.DOTALL)


def _ros_args(argv: list[str]) -> list[str]:
    """Return the tokens between ``--ros-args`` and ``--`` (every such section), as rcl does."""
    out, inside = [], False
    for tok in argv:
        if tok == '--ros-args':
            inside = True
        elif tok == '--':
            inside = False
        elif inside:
            out.append(tok)
    return out


def check_ros_args(argv: list[str]) -> None:
    """Raise ParameterError for a ``-p`` rule rcl cannot parse (before rcl prints its own)."""
    toks = _ros_args(argv)
    for k, tok in enumerate(toks):
        if tok not in ('-p', '--param', '--params-file'):
            continue
        if k + 1 >= len(toks):
            raise ParameterError(f'{tok} needs an argument (-p name:=value, --params-file '
                                 'FILE)')
        arg = toks[k + 1]
        if tok == '--params-file':
            if not Path(arg).is_file():
                raise ParameterError(f'--params-file {arg}: no such file')
        elif not _RULE.match(arg):
            raise ParameterError(f"malformed parameter rule '{tok} {arg}': want "
                                 f'{tok} name:=value (e.g. -p top_k:=5)')


def _flatten(d: dict, prefix: str = '') -> set[str]:
    names = set()
    for k, v in d.items():
        name = f'{prefix}{k}'
        names |= _flatten(v, name + '.') if isinstance(v, dict) else {name}
    return names


def parameter_sources(argv: list[str], *, node_name: str,
                      fully_qualified_name: str) -> tuple[set[str], set[str]]:
    """(own, shared) parameter names the command line gives this node.

    ``own``: ``-p`` rules (for all nodes or this one) and params-file sections naming this
    node; a misspelt one is the user's mistake. ``shared``: keys of wildcard sections
    (``/**``, ``/**/name``...) of a params file shared by several nodes, which may hold
    other nodes' parameters. Files that cannot be read are left to rcl to report.
    """
    import yaml

    own, shared = set(), set()
    toks = _ros_args(argv)
    names = {node_name, fully_qualified_name.lstrip('/')}
    for k, tok in enumerate(toks[:-1]):
        arg = toks[k + 1]
        if tok in ('-p', '--param'):
            m = _RULE.match(arg)
            if m and (m['node'] is None or m['node'].lstrip('/') in names):
                own.add(m['name'])
        elif tok == '--params-file':
            try:
                doc = yaml.safe_load(Path(arg).read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            for section, body in (doc.items() if isinstance(doc, dict) else ()):
                if not isinstance(body, dict) or not isinstance(body.get('ros__parameters'),
                                                                dict):
                    continue
                keys = _flatten(body['ros__parameters'])
                if '*' in str(section):
                    shared |= keys
                elif str(section).lstrip('/') in names:
                    own |= keys
    return own, shared
