"""The reference architectures (cnn10, cnn20, plaincnn, resnet56, resnet, mlp, transformer).

They are registered through the ``register_models`` hook exactly as a third-party model is, and
built only from what the core offers every model: :class:`explorer.models.NormxModel`, the
normalized layers of :mod:`explorer.norm` and :func:`explorer.models.init_weights`.
"""

from __future__ import annotations

from explorer import ModelEntry, Param, hookimpl
from normx_plugins.models.cnn import cnn10, cnn20, plaincnn
from normx_plugins.models.mlp import mlp
from normx_plugins.models.resnet import RESNET_VARIANTS, resnet, resnet56
from normx_plugins.models.transformer import PLACEMENTS, transformer

WIDTH_MULTIPLIER = Param("width_multiplier", float, 1.0, doc="scales every layer's width")
VARIANT = Param("variant", str, "standard", RESNET_VARIANTS, doc="block variant")

MODELS: list[ModelEntry] = [
    ModelEntry("cnn10", cnn10, params=(WIDTH_MULTIPLIER,),
               description="10-layer non-residual CNN of the paper (Appendix A)"),
    ModelEntry("cnn20", cnn20, params=(WIDTH_MULTIPLIER,),
               description="20-layer non-residual CNN of the paper (Appendix A)"),
    ModelEntry("plaincnn", plaincnn,
               params=(Param("depth", int, 30, doc="normalized conv layers"),
                       Param("width", int, 64, doc="channels of every layer")),
               description="constant-width non-residual CNN, stride 1 (Claim 3's sweep)"),
    ModelEntry("resnet56", resnet56, params=(VARIANT,),
               description="ResNet-56, 2x the usual width: [32, block(32,9), block(64,9), block(128,9)]"),
    ModelEntry("resnet", resnet,
               params=(Param("blocks", int, 9, doc="blocks per stage"),
                       Param("width", int, 32, doc="first stage width"), VARIANT),
               description="CIFAR ResNet with 3 stages of `blocks` BasicBlocks (resnet56 = resnet(blocks=9))"),
    ModelEntry("mlp", mlp,
               params=(Param("depth", int, 8), Param("width", int, 256), Param("image_size", int, 32, doc="input side")),
               description="fully connected network of normalized linear layers on flattened images"),
    ModelEntry("transformer", transformer,
               params=(Param("layers", int, 6), Param("width", int, 128), Param("heads", int, 4),
                       Param("placement", str, "pre", PLACEMENTS,
                             doc="x + f(N(x)) (pre), N(x + f(x)) (post) or x + N(f(N(x))) (peri, Peri-LN)"),
                       Param("patch", int, 4, doc="patch side"), Param("image_size", int, 32)),
               description="ViT-style transformer on 4x4 patch tokens, Pre-, Post- or Peri-Norm blocks"),
]


@hookimpl
def register_models(register):
    for model in MODELS:
        register(model)
