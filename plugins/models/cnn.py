"""Non-residual CNNs: the paper's cnn10 and cnn20 (Appendix A) and the constant-width plaincnn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from explorer.models import ModelError, NormxModel, init_weights
from explorer.norm import create_conv

if TYPE_CHECKING:
    from explorer.spec import Spec

#: Layer widths, ``(width, 2)`` for a stride-2 layer.
CNN10 = [64, (64, 2), 128, (128, 2), 256, (256, 2), 512, (512, 2), 512, 512]
CNN20 = [64, 64, 64, (64, 2), 128, 128, 128, (128, 2), 256, 256, 256, (256, 2), 256, 256, 256, (256, 2),
         512, 512, 512, 512]


class PlainCNN(NormxModel):
    """A non-residual CNN: normalized 3x3 convs (the paper's Appendix A), global average pool, linear."""

    def __init__(self, spec: Spec, config: list[int | tuple[int, int]], num_classes: int = 10,
                 in_channels: int = 3, width_multiplier: float = 1.0):
        super().__init__()
        layers = []
        channels = in_channels
        for item in config:
            width, stride = item if isinstance(item, tuple) else (item, 1)
            width = max(1, int(round(width * width_multiplier)))
            layers.append(self.add_probe(create_conv(spec, channels, width, 3, stride=stride)))
            channels = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        init_weights(self, skip=(self.head,))

    def features(self, x: Tensor) -> Tensor:
        return self.layers(x).mean(dim=(2, 3))


def cnn10(spec: Spec, num_classes: int = 10, in_channels: int = 3, width_multiplier: float = 1.0) -> PlainCNN:
    return PlainCNN(spec, CNN10, num_classes, in_channels, width_multiplier)


def cnn20(spec: Spec, num_classes: int = 10, in_channels: int = 3, width_multiplier: float = 1.0) -> PlainCNN:
    return PlainCNN(spec, CNN20, num_classes, in_channels, width_multiplier)


def plaincnn(spec: Spec, num_classes: int = 10, in_channels: int = 3, depth: int = 30, width: int = 64) -> PlainCNN:
    if depth < 1 or width < 1:
        raise ModelError("plaincnn: depth and width must be at least 1")
    return PlainCNN(spec, [width] * depth, num_classes, in_channels)
