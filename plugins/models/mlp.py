"""A fully connected network of normalized linear layers on flattened images."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from explorer.models import ModelError, NormxModel, init_weights
from explorer.norm import create_linear

if TYPE_CHECKING:
    from explorer.spec import Spec


class MLP(NormxModel):
    """Flattened input -> ``depth`` normalized linear layers of ``width`` -> linear classifier."""

    def __init__(self, spec: Spec, num_classes: int = 10, in_channels: int = 3, depth: int = 8,
                 width: int = 256, image_size: int = 32):
        super().__init__()
        if depth < 1 or width < 1:
            raise ModelError("mlp: depth and width must be at least 1")
        self.in_features = in_channels * image_size * image_size
        layers = []
        for i in range(depth):
            layers.append(self.add_probe(create_linear(spec, self.in_features if i == 0 else width, width)))
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        init_weights(self, skip=(self.head,))

    def features(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ModelError(f"mlp was built for {self.in_features} input values per sample, got "
                             f"{x.shape[1]}; set mlp(image_size=…) to the input's side")
        return self.layers(x)


def mlp(spec: Spec, num_classes: int = 10, in_channels: int = 3, depth: int = 8, width: int = 256,
        image_size: int = 32) -> MLP:
    return MLP(spec, num_classes, in_channels, depth, width, image_size)
