"""Reference architectures built from a normalizer spec, named in call form.

``create_model("plaincnn(depth=30, width=64)", "gn(group_size=4)")`` parses the name with the spec
tokenizer, looks the architecture up in the registry (built-ins come from the ``normx_plugins.models``
plugin, third parties add theirs through the ``register_models`` hook) and builds it.

Every model is a :class:`NormxModel`: its normalization sites are normalized layers built from the
spec, ``probes`` lists the modules whose outputs the predictors hook (in forward order), and
``head`` is the classifier whose input is the penultimate feature vector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from explorer.errors import NormxError, SpecError
from explorer.registry import Param, Registry
from explorer.spec import Spec, Step, _parse_raw, format_value, parse_spec


class ModelError(NormxError, ValueError):
    """An unknown model, an unknown parameter, or a spec the model cannot be built with."""


class NormxModel(nn.Module):
    """Base of the reference models: ``forward = head(features(x))``.

    ``probes`` are the depth positions the predictors measure, in forward order; ``probe_stages``
    gives each probe's stage (a run of positions at one resolution; the variance of a residual
    stream restarts at a downsampling block, so growth is fitted per stage).
    """

    head: nn.Linear

    def __init__(self) -> None:
        super().__init__()
        self._probes: list[nn.Module] = []
        self._stages: list[int] = []

    def add_probe(self, module: nn.Module, stage: int = 0) -> nn.Module:
        self._probes.append(module)
        self._stages.append(stage)
        return module

    @property
    def probes(self) -> list[nn.Module]:
        return list(self._probes)

    @property
    def probe_stages(self) -> list[int]:
        return list(self._stages)

    @property
    def normalized_layers(self) -> list[nn.Module]:
        """Every normalized layer (op + normalizer unit) in construction order."""
        from explorer.norm import NormalizedLayer

        return [m for m in self.modules() if isinstance(m, NormalizedLayer)]

    def features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def init_weights(model: nn.Module, skip: tuple[nn.Module, ...] = ()) -> None:
    """Kaiming-normal (fan-in, ReLU gain) weights and zero biases, as the paper's code initialises.

    A weight under a parametrization (weight normalization) is initialised through its original.
    """
    for module in model.modules():
        if module in skip or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if parametrize.is_parametrized(module, "weight"):
            weight = module.parametrizations.weight.original
        else:
            weight = module.weight
        with torch.no_grad():
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                module.bias.zero_()


def weight_only(spec: Spec) -> Spec:
    """The spec's weight step alone (for ops that carry no activation normalizer)."""
    step = spec.slot("weight")
    return Spec((step,)) if step is not None else Spec()


def activation_only(spec: Spec) -> Spec:
    """The spec without its weight step (a bare normalizer, e.g. in front of an op)."""
    return spec.without("weight")


# --------------------------------------------------------------------------- names


def parse_model_name(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``plaincnn(depth=30, width=64)`` -> ``("plaincnn", [], {"depth": 30, "width": 64})``."""
    if not isinstance(text, str) or not text.strip():
        raise ModelError("empty model name; see 'normx models'")
    try:
        raws = _parse_raw(text)
    except SpecError as err:
        raise ModelError(f"model {text!r}: {err.bare_message}") from None
    if len(raws) != 1:
        raise ModelError(f"model {text!r}: one model name in call form, e.g. plaincnn(depth=30, width=64)")
    raw = raws[0]
    return raw.name, list(raw.args), dict(raw.kwargs)


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from explorer.plugins import get_registry

    return get_registry()


def resolve_model(text: str, registry: Registry | None = None) -> tuple[Any, dict[str, Any], str]:
    """(registry entry, coerced params, canonical name) for a model name in call form."""
    registry = _registry(registry)
    name, args, kwargs = parse_model_name(text)
    entry = registry.models.get(name)
    if entry is None:
        valid = ", ".join(sorted(registry.models)) or "none installed"
        raise ModelError(f"unknown model {name!r}; valid models: {valid}")
    if len(args) > len(entry.params):
        raise ModelError(f"{name} takes at most {len(entry.params)} argument(s), got {len(args)}")
    for param, value in zip(entry.params, args):
        if param.name in kwargs:
            raise ModelError(f"{name}: parameter {param.name!r} given twice")
        kwargs[param.name] = value
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        param = entry.param(key)
        if param is None:
            valid = ", ".join(p.name for p in entry.params) or "none"
            raise ModelError(f"{name} has no parameter {key!r} (parameters: {valid})")
        try:
            params[key] = param.coerce(value, name)
        except SpecError as err:
            raise ModelError(str(err)) from None
    for param in entry.params:
        params.setdefault(param.name, param.default)
    shown = [f"{p.name}={format_value(params[p.name])}" for p in entry.params if params[p.name] != p.default]
    canonical = f"{name}({', '.join(shown)})" if shown else name
    return entry, params, canonical


def canonical_model_name(text: str, registry: Registry | None = None) -> str:
    """The model's name with non-default parameters only: ``resnet56(variant=standard)`` -> ``resnet56``."""
    return resolve_model(text, registry)[2]


def normalization_widths(model: nn.Module) -> tuple[set[int], set[int]]:
    """(widths of the model's normalization sites, input widths of its normalized layers' ops).

    A spec's steps after an op see the first set, steps placed before an op (``at=pre``) the
    second: what a group setting resolves against (a group size equal to the width is LN).
    """
    from explorer.norm import NormalizedLayer, Normalizer

    sites = {m.channels for m in model.modules() if isinstance(m, Normalizer) and m.channels is not None}
    inputs = {m.in_channels for m in model.modules() if isinstance(m, NormalizedLayer)}
    return sites, inputs


def create_model(name: str, spec: str | Spec, num_classes: int = 10, in_channels: int = 3,
                 registry: Registry | None = None) -> nn.Module:
    """Build the architecture ``name`` (call form) with every normalization site made from ``spec``."""
    registry = _registry(registry)
    entry, params, canonical = resolve_model(name, registry)
    spec = parse_spec(spec, registry)
    if num_classes < 1 or in_channels < 1:
        raise ModelError(f"{canonical}: num_classes and in_channels must be positive")
    try:
        model = entry.factory(spec, num_classes=num_classes, in_channels=in_channels, **params)
    except SpecError as err:
        raise ModelError(f"{canonical} with {spec}: {err}") from None
    model.model_name = canonical
    model.spec = spec
    return model


def list_models(registry: Registry | None = None) -> list[dict[str, Any]]:
    """What ``normx models`` shows: name, parameters with defaults and choices, description, plugin."""
    registry = _registry(registry)
    rows = []
    for entry in sorted(registry.models.values(), key=lambda e: e.name):
        rows.append({
            "name": entry.name,
            "params": {p.name: {"default": p.default, "choices": list(p.choices) if p.choices else None,
                                "doc": p.doc} for p in entry.params},
            "description": entry.description,
            "plugin": entry.plugin,
        })
    return rows


# --------------------------------------------------------------------------- convolutional nets

CNN10 = [64, (64, 2), 128, (128, 2), 256, (256, 2), 512, (512, 2), 512, 512]
CNN20 = [64, 64, 64, (64, 2), 128, 128, 128, (128, 2), 256, 256, 256, (256, 2), 256, 256, 256, (256, 2),
         512, 512, 512, 512]


class PlainCNN(NormxModel):
    """A non-residual CNN: normalized 3x3 convs (the paper's Appendix A), global average pool, linear."""

    def __init__(self, spec: Spec, config: list[int | tuple[int, int]], num_classes: int = 10,
                 in_channels: int = 3, width_multiplier: float = 1.0):
        super().__init__()
        from explorer.norm import create_conv

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


# --------------------------------------------------------------------------- ResNets

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
        from explorer.norm import create_activation, create_conv, create_norm

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
        from explorer.norm import create_conv, create_norm

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


# --------------------------------------------------------------------------- MLP


class MLP(NormxModel):
    """Flattened input -> ``depth`` normalized linear layers of ``width`` -> linear classifier."""

    def __init__(self, spec: Spec, num_classes: int = 10, in_channels: int = 3, depth: int = 8,
                 width: int = 256, image_size: int = 32):
        super().__init__()
        from explorer.norm import create_linear

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


# --------------------------------------------------------------------------- transformer


class Attention(nn.Module):
    def __init__(self, spec: Spec, width: int, heads: int):
        super().__init__()
        from explorer.norm import create_linear

        self.heads = heads
        self.qkv = create_linear(weight_only(spec), width, 3 * width, activation=False)
        self.proj = create_linear(weight_only(spec), width, width, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(n, length, width))


class TransformerBlock(nn.Module):
    """Pre-Norm: x + f(N(x)) for f in (attention, MLP); Post-Norm: N(x + f(x)) (seed 001).

    The normalizers act on the token stream, not on one op's output, so they are bare
    normalizers of the spec (without its activation); the MLP's nonlinearity is the spec's
    activation and a weight step (WN, SWS) normalizes every linear op's weight.
    """

    def __init__(self, spec: Spec, width: int, heads: int, placement: str):
        super().__init__()
        from explorer.norm import create_activation, create_linear, create_norm

        norm_spec = activation_only(spec).without("activation")
        self.placement = placement
        self.norm1 = create_norm(norm_spec, width, activation=False)
        self.norm2 = create_norm(norm_spec, width, activation=False)
        self.attn = Attention(spec, width, heads)
        self.fc1 = create_linear(weight_only(spec), width, 4 * width, activation=False)
        self.act = create_activation(spec, 4 * width)
        self.fc2 = create_linear(weight_only(spec), 4 * width, width, activation=False)

    def mlp(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def forward(self, x: Tensor) -> Tensor:
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
        from explorer.norm import create_norm

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
        self.final = create_norm(norm_spec, width, activation=False) if placement == "pre" else None
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


# --------------------------------------------------------------------------- registration data

#: name -> (factory, parameters, description); registered by ``normx_plugins.models``.
BUILTIN_MODELS: dict[str, tuple[Any, tuple[Param, ...], str]] = {
    "cnn10": (cnn10, (Param("width_multiplier", float, 1.0, doc="scales every layer's width"),),
              "10-layer non-residual CNN of the paper (Appendix A)"),
    "cnn20": (cnn20, (Param("width_multiplier", float, 1.0, doc="scales every layer's width"),),
              "20-layer non-residual CNN of the paper (Appendix A)"),
    "plaincnn": (plaincnn, (Param("depth", int, 30, doc="normalized conv layers"),
                            Param("width", int, 64, doc="channels of every layer")),
                 "constant-width non-residual CNN, stride 1 (Claim 3's sweep)"),
    "resnet56": (resnet56, (Param("variant", str, "standard", RESNET_VARIANTS, doc="block variant"),),
                 "ResNet-56, 2x the usual width: [32, block(32,9), block(64,9), block(128,9)]"),
    "resnet": (resnet, (Param("blocks", int, 9, doc="blocks per stage"), Param("width", int, 32, doc="first stage width"),
                        Param("variant", str, "standard", RESNET_VARIANTS, doc="block variant")),
               "CIFAR ResNet with 3 stages of `blocks` BasicBlocks (resnet56 = resnet(blocks=9))"),
    "mlp": (mlp, (Param("depth", int, 8), Param("width", int, 256), Param("image_size", int, 32, doc="input side")),
            "fully connected network of normalized linear layers on flattened images"),
    "transformer": (transformer, (Param("layers", int, 6), Param("width", int, 128), Param("heads", int, 4),
                                  Param("placement", str, "pre", ("pre", "post"), doc="Pre-Norm or Post-Norm blocks"),
                                  Param("patch", int, 4, doc="patch side"), Param("image_size", int, 32)),
                    "ViT-style transformer on 4x4 patch tokens, Pre-Norm or Post-Norm"),
}
