"""CIFAR ResNets of BasicBlocks in the four variants of the paper's Figure 3."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from explorer.models import ModelError, NormxModel, activation_only, init_weights, weight_only
from explorer.norm import create_activation, create_conv, create_norm

if TYPE_CHECKING:
    from explorer.spec import Spec

RESNET_VARIANTS = ("standard", "skipinit", "resrelu", "preact")


class BasicBlock(nn.Module):
    """A ResNet BasicBlock in one of four variants (the paper's Figure 3).

    standard:  act(N2(conv2(act(N1(conv1 x)))) + shortcut x)
    skipinit:  act(α·N2(conv2(...)) + shortcut x), α a learned scalar initialised to 0
    resrelu:   act(N2(conv2(...))) + shortcut x     (nonlinearity on the residual path, none after the add)
    preact:    conv2(act(N2(conv1(act(N1 x))))) + shortcut x
    A downsampling block's shortcut is a normalized 3x3 conv with stride 2 (as the paper's code).
    """

    def __init__(self, spec: Spec, cin: int, cout: int, stride: int, variant: str):
        super().__init__()
        self.variant = variant
        downsample = stride != 1 or cin != cout
        if variant == "preact":
            self.pre = create_norm(activation_only(spec), cin)
            self.conv1 = create_conv(spec, cin, cout, 3, stride=stride)
            self.conv2 = create_conv(weight_only(spec), cout, cout, 3, activation=False)
            self.shortcut = create_conv(weight_only(spec), cin, cout, 3, stride=stride, activation=False) \
                if downsample else None
            self.act = None
            return
        self.conv1 = create_conv(spec, cin, cout, 3, stride=stride)
        self.conv2 = create_conv(spec, cout, cout, 3, activation=variant == "resrelu")
        self.shortcut = create_conv(spec, cin, cout, 3, stride=stride, activation=False) if downsample else None
        self.act = None if variant == "resrelu" else create_activation(spec, cout)
        self.alpha = nn.Parameter(torch.zeros(())) if variant == "skipinit" else None

    def forward(self, x: Tensor) -> Tensor:
        if self.variant == "preact":
            h = self.pre(x)
            skip = self.shortcut(h) if self.shortcut is not None else x
            return self.conv2(self.conv1(h)) + skip
        branch = self.conv2(self.conv1(x))
        if self.alpha is not None:
            branch = self.alpha * branch
        out = branch + (self.shortcut(x) if self.shortcut is not None else x)
        return self.act(out) if self.act is not None else out


class ResNet(NormxModel):
    """CIFAR ResNet ``[w, block(w, n), block(2w, n), block(4w, n)]``; resnet56 is n=9, w=32 (2x the usual width).

    The probes are the stem's normalized layer and every block's output (the residual stream,
    where the variance of Claims 1 and 2 grows), one stage per resolution.
    """

    def __init__(self, spec: Spec, num_classes: int = 10, in_channels: int = 3, blocks: int = 9,
                 width: int = 32, variant: str = "standard"):
        super().__init__()
        if variant not in RESNET_VARIANTS:
            raise ModelError(f"unknown ResNet variant {variant!r}; valid: {', '.join(RESNET_VARIANTS)}")
        if blocks < 1 or width < 1:
            raise ModelError("resnet: blocks and width must be at least 1")
        self.stem = self.add_probe(create_conv(spec, in_channels, width, 3), stage=0)
        stages = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            layer = []
            for i in range(blocks):
                block = BasicBlock(spec, cin, cout, 2 if (i == 0 and stage > 0) else 1, variant)
                layer.append(self.add_probe(block, stage=stage))
                cin = cout
            stages.append(nn.Sequential(*layer))
        self.stages = nn.Sequential(*stages)
        self.final = create_norm(activation_only(spec), cin) if variant == "preact" else None
        self.head = nn.Linear(cin, num_classes)
        init_weights(self, skip=(self.head,))

    def features(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        if self.final is not None:
            x = self.final(x)
        return x.mean(dim=(2, 3))


def resnet(spec: Spec, num_classes: int = 10, in_channels: int = 3, blocks: int = 9, width: int = 32,
           variant: str = "standard") -> ResNet:
    return ResNet(spec, num_classes, in_channels, blocks, width, variant)


def resnet56(spec: Spec, num_classes: int = 10, in_channels: int = 3, variant: str = "standard") -> ResNet:
    return ResNet(spec, num_classes, in_channels, 9, 32, variant)
