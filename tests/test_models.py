"""Reference models: names in call form, normalized layers from the spec, probes, plugin registration."""

import pytest
import torch

from explorer.models import ModelError, canonical_model_name, create_model
from explorer.norm import NormalizedLayer


@pytest.mark.parametrize("name,probes", [
    ("cnn10(width_multiplier=0.125)", 10), ("cnn20(width_multiplier=0.125)", 20), ("plaincnn(depth=5, width=8)", 5),
    ("resnet(blocks=2, width=8)", 7), ("resnet(blocks=2, width=8, variant=preact)", 7),
    ("mlp(depth=3, width=16, image_size=8)", 3), ("transformer(layers=2, width=16, heads=2, image_size=8)", 2),
    ("transformer(layers=2, width=16, heads=2, image_size=8, placement=post)", 2),
])
def test_models_build_and_run(name, probes):
    size = 8 if "image_size=8" in name else 32
    model = create_model(name, "ln", num_classes=7)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    assert len(model.probes) == probes


def test_resnet56_and_cnn_layers_come_from_spec():
    model = create_model("resnet56", "gn(group_size=4)")
    assert len(model.probes) == 1 + 27
    layers = model.normalized_layers
    assert len(layers) == 1 + 54 + 2  # stem, two per block, two downsampling shortcuts
    assert all(str(layer.spec) == "mean(gx, group_size=4) | std(gx, group_size=4) | affine | relu" for layer in layers)
    cnn = create_model("cnn10", "bn")
    widths = [m.op.out_channels for m in cnn.normalized_layers]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert [m.op.stride[0] for m in cnn.normalized_layers] == [1, 2, 1, 2, 1, 2, 1, 2, 1, 1]


def test_variants_differ_where_the_paper_says():
    standard = create_model("resnet(blocks=1, width=8)", "bn")
    resrelu = create_model("resnet(blocks=1, width=8, variant=resrelu)", "bn")
    skip = create_model("resnet(blocks=1, width=8, variant=skipinit)", "sws")
    block = standard.stages[0][0]
    assert block.act is not None and block.conv2.post.activation is None  # activation after the add
    rblock = resrelu.stages[0][0]
    assert rblock.act is None and rblock.conv2.post.activation is not None  # on the residual path
    x = torch.randn(2, 8, 8, 8)
    sblock = skip.stages[0][0]
    assert sblock.alpha.item() == 0.0
    assert torch.allclose(sblock(x), sblock.act(x))  # alpha = 0: the block is the skip path at init


def test_weight_norm_parametrizes_every_conv():
    model = create_model("plaincnn(depth=3, width=8)", "wn")
    assert all(hasattr(layer.op, "parametrizations") for layer in model.normalized_layers)
    w = model.normalized_layers[1].op.weight
    assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5)


def test_names_and_errors():
    assert canonical_model_name("resnet56(variant=standard)") == "resnet56"
    assert canonical_model_name("plaincnn( width = 16 )") == "plaincnn(width=16)"
    with pytest.raises(ModelError, match="valid models: .*cnn10.*resnet56"):
        create_model("vgg16", "bn")
    with pytest.raises(ModelError, match="parameters: depth, width"):
        create_model("plaincnn(widht=3)", "bn")
    with pytest.raises(Exception, match="must be one of"):
        create_model("resnet56(variant=fancy)", "bn")
    with pytest.raises(ModelError, match="does not divide"):
        create_model("plaincnn(depth=2, width=8)", "gn")


def test_models_are_plugins():
    from explorer.plugins import get_registry

    registry = get_registry()
    assert {"cnn10", "cnn20", "plaincnn", "resnet56", "mlp", "transformer"} <= set(registry.models)
    assert registry.models["cnn10"].plugin == "models"
    assert all(isinstance(m, NormalizedLayer) for m in create_model("mlp(depth=2, width=4)", "bn").probes)
