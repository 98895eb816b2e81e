"""A ViT-style transformer on patch tokens, with Pre-Norm, Post-Norm or Peri-Norm blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from explorer.models import ModelError, NormxModel, activation_only, weight_only
from explorer.norm import create_activation, create_linear, create_norm

if TYPE_CHECKING:
    from explorer.spec import Spec


class Attention(nn.Module):
    def __init__(self, spec: Spec, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = create_linear(weight_only(spec), width, 3 * width, activation=False)
        self.proj = create_linear(weight_only(spec), width, width, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(n, length, width))


#: Where a block's normalizers sit (``transformer(placement=…)``).
PLACEMENTS = ("pre", "post", "peri")


class TransformerBlock(nn.Module):
    """One block, for f in (attention, MLP):

    - ``pre``:  x + f(N(x))           (Pre-Norm; seed 001)
    - ``post``: N(x + f(x))           (Post-Norm, the original transformer; seed 001)
    - ``peri``: x + N'(f(N(x)))       (Peri-LN, Kim et al., ICML 2025: the sublayer's input *and* output
      are normalized, the residual stream itself never is; as in Gemma 2 and OLMo 2)

    The normalizers act on the token stream, not on one op's output, so they are bare
    normalizers of the spec (without its activation); the MLP's nonlinearity is the spec's
    activation and a weight step (WN, SWS) normalizes every linear op's weight. ``peri`` builds a
    second, independent normalizer per sublayer (``out1``, ``out2``) for the output.
    """

    def __init__(self, spec: Spec, width: int, heads: int, placement: str):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ModelError(f"transformer: placement must be one of {', '.join(PLACEMENTS)}; got {placement!r}")
        norm_spec = activation_only(spec).without("activation")
        self.placement = placement
        self.norm1 = create_norm(norm_spec, width, activation=False)
        self.norm2 = create_norm(norm_spec, width, activation=False)
        self.out1 = create_norm(norm_spec, width, activation=False) if placement == "peri" else None
        self.out2 = create_norm(norm_spec, width, activation=False) if placement == "peri" else None
        self.attn = Attention(spec, width, heads)
        self.fc1 = create_linear(weight_only(spec), width, 4 * width, activation=False)
        self.act = create_activation(spec, 4 * width)
        self.fc2 = create_linear(weight_only(spec), 4 * width, width, activation=False)

    def mlp(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def forward(self, x: Tensor) -> Tensor:
        if self.out1 is not None and self.out2 is not None:  # peri
            x = x + self.out1(self.attn(self.norm1(x)))
            return x + self.out2(self.mlp(self.norm2(x)))
        if self.placement == "pre":
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class Transformer(NormxModel):
    """A ViT-style classifier: images -> non-overlapping patch tokens (a linear patch embedding plus
    learned positions) -> ``layers`` blocks -> mean over tokens -> linear head.

    Inputs may also be token sequences (N, L, width), used as they are. The probes are the block
    outputs (the token stream).
    """

    def __init__(self, spec: Spec, num_classes: int = 10, in_channels: int = 3, layers: int = 6,
                 width: int = 128, heads: int = 4, placement: str = "pre", patch: int = 4, image_size: int = 32):
        super().__init__()
        if width % heads:
            raise ModelError(f"transformer: width={width} is not divisible by heads={heads}")
        if image_size % patch:
            raise ModelError(f"transformer: image_size={image_size} is not divisible by patch={patch}")
        self.width = width
        self.embed = nn.Conv2d(in_channels, width, patch, stride=patch)
        self.position = nn.Parameter(torch.randn(1, (image_size // patch) ** 2, width) * 0.02)
        self.blocks = nn.Sequential(*[self.add_probe(TransformerBlock(spec, width, heads, placement))
                                      for _ in range(layers)])
        norm_spec = activation_only(spec).without("activation")
        # Pre- and Peri-Norm leave the residual stream unnormalized: a final norm before the head
        self.final = create_norm(norm_spec, width, activation=False) if placement != "post" else None
        self.head = nn.Linear(width, num_classes)

    def tokens(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            return x
        t = self.embed(x).flatten(2).transpose(1, 2)
        if t.shape[1] != self.position.shape[1]:
            raise ModelError(f"transformer: {t.shape[1]} patches, the model was built for "
                             f"{self.position.shape[1]}; set transformer(image_size=…, patch=…)")
        return t + self.position

    def features(self, x: Tensor) -> Tensor:
        x = self.blocks(self.tokens(x))
        if self.final is not None:
            x = self.final(x)
        return x.mean(dim=1)


def transformer(spec: Spec, num_classes: int = 10, in_channels: int = 3, layers: int = 6, width: int = 128,
                heads: int = 4, placement: str = "pre", patch: int = 4, image_size: int = 32) -> Transformer:
    return Transformer(spec, num_classes, in_channels, layers, width, heads, placement, patch, image_size)
