"""Models: parameter counts against independent counts, output shapes, method conversion."""

import pytest
import torch
from torch import nn

from cwn_bench.config import ModelConfig
from cwn_bench.models import NAMES, build, from_config
from cwn_bench.nn import CWNConv2d, CWNLinear, NNNLinear, WNConv2d, WNLinear, WSConv2d, WSLinear


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def bn(c):
    return 2 * c


def count(model):
    return sum(p.numel() for p in model.parameters())


def googlenet_bn_count(num_classes):
    """BN-Inception as in soumith/imagenet-multiGPU.torch models/googlenetbn.lua, transcribed
    independently: every conv has a bias and is followed by BN (eps 1e-3)."""
    unit = lambda cin, cout, k: conv(cin, cout, k) + bn(cout)  # noqa: E731
    total = unit(3, 64, 7) + unit(64, 64, 1) + unit(64, 192, 3)
    table = [  # input, 1x1, 3x3 reduce, 3x3, double reduce, double 3x3, pool projection, reduction after
        (192, 64, 64, 64, 64, 96, 32, False), (256, 64, 64, 96, 64, 96, 64, False),
        (320, 0, 128, 160, 64, 96, 0, True), (576, 224, 64, 96, 96, 128, 128, False),
        (576, 192, 96, 128, 96, 128, 128, False), (576, 160, 128, 160, 128, 160, 96, False),
        (576, 96, 128, 192, 160, 192, 96, False), (576, 0, 128, 192, 192, 256, 0, True),
        (1024, 352, 192, 320, 160, 224, 128, False), (1024, 352, 192, 320, 192, 224, 128, False)]
    for cin, n1, r3, n3, r33, n33, proj, reduction in table:
        total += (unit(cin, n1, 1) if n1 else 0) + unit(cin, r3, 1) + unit(r3, n3, 3)
        total += unit(cin, r33, 1) + unit(r33, n33, 3) + unit(n33, n33, 3) + (unit(cin, proj, 1) if proj else 0)
        cout = n1 + n3 + n33 + (proj or cin)
        if reduction:
            total += unit(cout, cout, 2)
    return total + 1024 * num_classes + num_classes


def resnet56_count(num_classes):
    total = conv(3, 16, 3, bias=False) + bn(16)
    for cin, cout in ((16, 16), (16, 32), (32, 64)):
        for i in range(9):
            total += conv(cin if i == 0 else cout, cout, 3, False) + conv(cout, cout, 3, False) + 2 * bn(cout)
    return total + 64 * num_classes + num_classes


def vgg_a_count(num_classes):
    widths = [3, 64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(conv(a, b, 3) for a, b in zip(widths, widths[1:]))
    return convs + (512 * 512 + 512) + bn(512) + 512 * num_classes + num_classes  # vggA_plain.lua: two linears


def test_parameter_counts_match_independent_counts():
    assert count(build("googlenet_bn", 1000)) == googlenet_bn_count(1000) == 16_731_144
    assert count(build("googlenet", 1000)) == 6_624_904  # torchvision's documented num_params
    assert count(build("resnet56", 10, in_shape=(3, 32, 32))) == resnet56_count(10) == 853_018  # He et al.: 0.85M
    assert count(build("vgg_a", 10, in_shape=(3, 32, 32))) == vgg_a_count(10) == 9_489_290  # the authors' figure
    mlp = build("mlp", 10, in_shape=(1, 32, 32))
    assert count(mlp) == (1024 * 128 + 128) + (128 * 64 + 64) + (64 * 48 + 48) + (48 * 48 + 48) + (48 * 10 + 10)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_shape", [(3, 32, 32), (1, 32, 32)])
def test_output_shape(name, in_shape):
    model = build(name, 7, "wn" if in_shape[0] == 1 else "plain", in_shape=in_shape).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *in_shape)).shape == (2, 7)


def test_googlenet_bn_layout_at_224():
    model = build("googlenet_bn", 5).eval()
    shapes = {}
    for name in ("stem", "body.inception3c", "body.reduce3c", "body.inception4e", "body.reduce4e", "body.inception5b"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: shapes.update({name: o.shape[1:]}))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert shapes == {"stem": (192, 28, 28), "body.inception3c": (576, 28, 28), "body.reduce3c": (576, 14, 14),
                      "body.inception4e": (1024, 14, 14), "body.reduce4e": (1024, 7, 7),
                      "body.inception5b": (1024, 7, 7)}
    assert {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}


@pytest.mark.parametrize("method, conv_type, linear_type",
                         [("wn", WNConv2d, WNLinear), ("cwn", CWNConv2d, CWNLinear), ("ws", WSConv2d, WSLinear)])
@pytest.mark.parametrize("name", NAMES)
def test_method_converts_every_linear_map_except_kept_ones(name, method, conv_type, linear_type):
    shape = (3, 32, 32)
    types = {type(m) for m in build(name, 10, method, in_shape=shape).modules()}
    assert nn.Conv2d not in types and nn.Linear not in types
    model = build(name, 10, method, in_shape=shape, keep_first_plain=True, keep_classifier_plain=True)
    maps = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    plain = [m for m in maps if type(m) in (nn.Conv2d, nn.Linear)]
    kept = 3 if name == "vgg_a" else 2  # VGG-A's classifier is both of its linear maps, as the authors'
    assert len(plain) == kept and maps[0] in plain and maps[-kept + 1:] == plain[1:]
    assert all(isinstance(m, (conv_type, linear_type)) for m in maps if m not in plain)


def test_googlenet_aux_heads_and_config():
    model = build("googlenet", 4, in_shape=(3, 64, 64), aux_logits=True)
    out = model(torch.randn(2, 3, 64, 64))
    assert [o.shape for o in out] == [(2, 4)] * 3
    cfg = ModelConfig(name="mlp", method="cwn", hidden=[16, 8], keep_classifier_plain=True)
    mlp = from_config(cfg, 3, (1, 8, 8))
    assert type(mlp.fc1) is CWNLinear and type(mlp.classifier) is nn.Linear and mlp.fc2.out_features == 8


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="googlenet_bn"):
        build("alexnet", 10)


def _conv_unit_orders(model):
    """For every ConvBNReLU of ``model``: whether its conv's output goes through a ReLU
    before the BN, read from the autograd graph of a forward (not from the flag)."""
    orders = {}

    def hook(module, inputs, output, name):
        fn = inputs[0].grad_fn
        orders[name] = fn is not None and "Relu" in type(fn).__name__
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name))
    model(torch.randn(2, 3, 32, 32))
    return orders


def test_googlenet_bn_relu_before_bn_in_the_authors_66_convs():
    authors = _conv_unit_orders(build("googlenet_bn", 10))
    assert len(authors) == 71 and sum(authors.values()) == 66  # stem (3) and reductions (2): conv-BN-ReLU
    assert not any(v for k, v in authors.items() if k.startswith("stem") or ".reduce" in k)
    text = _conv_unit_orders(build("googlenet_bn", 10, relu_before_bn=False))
    assert len(text) == 71 and not any(text.values())
    cfg = ModelConfig(name="googlenet_bn", relu_before_bn=False)
    assert from_config(cfg, 10, (3, 32, 32)).body.inception3a.b1.relu_before_bn is False


def test_mlp_batchnorm_before_each_hidden_relu():
    model = build("mlp", 3, in_shape=(1, 4, 4), hidden=[8, 6], batchnorm=True)
    assert [n for n, _ in model.named_children()] == ["flatten", "fc1", "bn1", "fc2", "bn2", "classifier"]
    x = torch.randn(5, 1, 4, 4)
    h = (model.bn1(model.fc1(x.flatten(1)))).relu()
    torch.testing.assert_close(model(x), model.classifier(model.bn2(model.fc2(h)).relu()))
    assert count(model) == count(build("mlp", 3, in_shape=(1, 4, 4), hidden=[8, 6])) + bn(8) + bn(6)


def test_authors_default_inits():
    torch.manual_seed(0)
    vgg = build("vgg_a", 10, in_shape=(3, 32, 32))
    for conv in (m for m in vgg.modules() if isinstance(m, nn.Conv2d)):  # MSRinit
        assert conv.bias.abs().max() == 0
        assert abs(conv.weight.std().item() / (2 / (9 * conv.out_channels)) ** 0.5 - 1) < 0.1
    fc = vgg.classifier.fc1  # Torch7's nn.Linear default
    assert fc.weight.abs().max() <= 512 ** -0.5 and fc.bias.abs().max() > 0
    assert build("resnet56", 10, in_shape=(3, 32, 32)).fc.bias.abs().max() == 0  # old_r_BN.lua


@pytest.mark.parametrize("method", ["nnn", "ws"])
def test_new_methods_build_from_config(method):
    cfg = ModelConfig(name="mlp", method=method, hidden=[8], nnn_interval=7, nnn_eps=0.5)
    model = from_config(cfg, 3, (1, 4, 4))
    if method == "nnn":  # the authors' NNN MLP keeps its first linear plain
        assert type(model.fc1) is nn.Linear and isinstance(model.classifier, NNNLinear)
        assert (model.classifier.nnn_interval, model.classifier.nnn_eps) == (7, 0.5)
        assert isinstance(from_config(ModelConfig(name="mlp", method="nnn", nnn_first_plain=False), 3, (1, 4, 4)).fc1,
                          NNNLinear)
    else:
        assert isinstance(model.fc1, WSLinear) and isinstance(model.classifier, WSLinear)


def test_wn_cwn_inits_of_the_authors_mlp_and_vgg_a():
    for method in ("wn", "cwn"):
        model = build("mlp", 3, method, in_shape=(1, 4, 4), hidden=[8])
        assert model.fc1.bias.abs().max() == 0 and model.classifier.bias.abs().max() == 0
    plain = build("mlp", 3, in_shape=(1, 4, 4), hidden=[8])
    assert plain.fc1.bias.abs().max() > 0  # Torch7's nn.Linear draws its bias

    torch.manual_seed(0)  # the authors' WN/CWN VGG-A convs: Torch7's reset (MSRinit skips them), bias 0
    vgg = build("vgg_a", 3, "cwn", in_shape=(3, 32, 32))
    conv = vgg.features[3]
    bound = 1 / (64 * 9) ** 0.5
    assert conv.v.abs().max() <= bound and abs(conv.v.std().item() / (bound / 3 ** 0.5) - 1) < 0.05
    assert conv.bias.abs().max() == 0 and vgg.classifier.fc1.bias.abs().max() > 0  # linears: Torch7's
    he = build("vgg_a", 3, "cwn", in_shape=(3, 32, 32), init="he").features[3].v  # a chosen scheme is kept
    assert abs(he.std().item() / (2 / (64 * 9)) ** 0.5 - 1) < 0.05


def test_fixed_scale_reaches_every_layer_of_the_authors_googlenet_bn():
    cfg = ModelConfig(name="googlenet_bn", method="cwn", scale="fixed", scale_value=1.414, keep_classifier_plain=True)
    model = from_config(cfg, 10, (3, 32, 32))
    assert not [n for n, _ in model.named_parameters() if n.endswith(".g")]
    scales = [b for n, b in model.named_buffers() if n.endswith(".g")]
    assert len(scales) == 71 and all(torch.equal(g, torch.full_like(g, 1.414)) for g in scales)
    assert type(model.fc) is nn.Linear
