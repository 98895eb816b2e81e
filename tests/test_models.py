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


def test_peri_placement_normalizes_each_sublayers_input_and_output():
    """Peri-LN (Kim et al., ICML 2025): x_{l+1} = x_l + N_out(F(N_in(x_l))) for F in (attention, MLP), checked
    against the formula written out with independent LayerNorms; Pre- and Post-Norm on the same weights."""
    torch.manual_seed(0)
    model = create_model("transformer(layers=1, width=16, heads=2, image_size=8, placement=peri)", "ln | gelu")
    block = model.blocks[0]
    assert block.out1 is not None and block.out2 is not None and model.final is not None
    with torch.no_grad():  # distinct affine parameters per norm, so a swapped norm would show
        for k, norm in enumerate((block.norm1, block.out1, block.norm2, block.out2)):
            norm.affine.weight.uniform_(0.5, 1.5)
            norm.affine.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 16, 16)

    def ln(norm, t):
        return torch.nn.functional.layer_norm(t, (16,), norm.affine.weight, norm.affine.bias, eps=1e-5)

    def mlp(t):
        return block.fc2.op(torch.nn.functional.gelu(block.fc1.op(t)))

    h = x + ln(block.out1, block.attn(ln(block.norm1, x)))
    expected = h + ln(block.out2, mlp(ln(block.norm2, h)))
    assert torch.allclose(block(x), expected, atol=1e-5)
    pre = create_model("transformer(layers=1, width=16, heads=2, image_size=8, placement=pre)", "ln | gelu")
    post = create_model("transformer(layers=1, width=16, heads=2, image_size=8, placement=post)", "ln | gelu")
    assert pre.blocks[0].out1 is None and post.final is None and pre.final is not None
    from explorer.norm import Normalizer

    counts = {p: sum(isinstance(m, Normalizer) and m.scale is not None for m in net.modules())
              for p, net in (("pre", pre), ("post", post), ("peri", model))}
    assert counts == {"pre": 3, "post": 2, "peri": 5}  # two (four with peri) per block, plus the final norm


@pytest.mark.parametrize("model,message", [
    ("transformer(placement=sandwich)", "placement' must be one of pre, post, peri; got 'sandwich'"),
    ("cnn10(placement=peri)", "cnn10 has no parameter 'placement'"),
    ("resnet56(placement=peri)", "resnet56 has no parameter 'placement'"),
])
def test_a_bad_placement_is_one_line_and_exit_2(model, message, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "explorer", "score", "dyt", "--model", model],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    study = tmp_path / "s.toml"
    study.write_text(f'name = "s"\nmodels = ["{model}"]\nn_trials = 1\n[objectives]\ntest_accuracy = "maximize"\n'
                     '[space]\npresets = ["dyt"]\n[data]\nname = "synthetic"\n')
    db = tmp_path / "s.db"
    proc = subprocess.run([sys.executable, "-m", "explorer", "study", "run", str(study), "--storage", f"sqlite:///{db}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not db.exists()  # nothing written


def test_the_placement_study_compares_the_three_placements():
    from pathlib import Path

    from explorer.models import resolve_model
    from explorer.search.study_file import load_study_file

    config = load_study_file(Path(__file__).parent.parent / "studies" / "transformer_placement.toml")
    assert sorted(resolve_model(m)[1]["placement"] for m in config.models) == ["peri", "post", "pre"]
