"""Chapter 01 models, steps and exercise checks."""


import pytest
import torch
import torch.nn.functional as F
from tolerance import assert_close_scaled
from torch import nn

from course_lib import cnn
from course_lib.cnn import checks
from course_lib.cnn.train import accuracy, augment, check_images, count_flops, predict, train_step

ARCHS = sorted(cnn.ARCHITECTURES)


def terms_scale(model: nn.Module, x: torch.Tensor) -> float:
    """The largest sum of |weight| * |input| + |bias| that a Conv2d or Linear of ``model`` computes on x: the
    size of the terms whose rounding two kernel paths (batch sizes, BLAS blockings) may differ in."""
    sizes = []

    def hook(m, inputs, out):
        a, w, b = inputs[0].abs(), m.weight.abs(), None if m.bias is None else m.bias.abs()
        if isinstance(m, nn.Linear):
            s = F.linear(a, w, b)
        else:
            s = F.conv2d(a, w, b, m.stride, m.padding, m.dilation, m.groups)
        sizes.append(float(s.max()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return max(sizes)


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes(arch):
    torch.manual_seed(0)
    model = cnn.build(arch).eval()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    feats = model.features(x)
    assert feats.ndim == 2 and feats.shape[0] == 3
    assert torch.allclose(model.head(feats), model(x), atol=1e-5)  # forward = head(features), in eval mode


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_goes_down(arch):
    torch.manual_seed(0)
    model = cnn.build(arch)
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = [train_step(model, opt, x, y).item() for _ in range(12)]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses


@pytest.mark.parametrize("arch", ARCHS)
def test_each_relu_is_its_own_module(arch):
    """Chapter 02 hooks ReLUs: every nn.ReLU module must run exactly once per forward."""
    model = cnn.build(arch).eval()
    calls = {}
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.register_forward_hook(lambda mod, inp, out: calls.__setitem__(id(mod), calls.get(id(mod), 0) + 1))
    model(torch.rand(2, 1, 28, 28))
    assert len(relus) >= 5
    assert sorted(calls.values()) == [1] * len(relus)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="expected one of"):
        cnn.build("vgg")


@pytest.mark.parametrize("c_in,c_out,k,size", [(1, 8, 3, 28), (16, 32, 5, 7), (3, 4, 1, 10)])
def test_count_flops_matches_formula(c_in, c_out, k, size):
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    assert count_flops(conv, (1, c_in, size, size)) == 2 * c_in * k * k * c_out * size * size
    lin = nn.Sequential(nn.Flatten(), nn.Linear(c_in * size * size, c_out))
    assert count_flops(lin, (1, c_in, size, size)) == 2 * c_in * size * size * c_out


def test_augment_is_a_flip_and_shift_of_each_image():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28)
    out = augment(x, torch.Generator().manual_seed(3), shift=2)
    assert out.shape == x.shape
    for i in range(len(x)):
        candidates = []
        for flip in (False, True):
            img = nn.functional.pad(x[i].flip(-1) if flip else x[i], (2, 2, 2, 2))  # (1, 32, 32)
            candidates += [img[:, dy:dy + 28, dx:dx + 28] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) for c in candidates), i
    assert not torch.equal(out, x)  # something moved


@pytest.mark.parametrize("bad", [torch.rand(2, 28, 28), torch.rand(2, 3, 28, 28), torch.rand(2, 1, 32, 32)])
def test_check_images_names_expected_shape(bad):
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        check_images(bad)


def test_check_images_rejects_integers():
    with pytest.raises(ValueError, match="float"):
        check_images(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_exercise_checks(capsys):
    assert checks.check_conv_flops(2 * 16 * 32 * 9 * 14 * 14)
    assert not checks.check_conv_flops(16 * 32 * 9 * 14 * 14)  # MACs, not FLOPs
    assert checks.check_inception_channels(16 + 32 + 12 + 20)          # the default module: 64 -> 80 channels
    assert not checks.check_inception_channels(64)
    assert checks.check_residual_shape((2, 32, 8, 8))                  # ceil(15 / 2)
    assert not checks.check_residual_shape((2, 32, 7, 7))
    assert checks.check_dense_inputs(24 + 3 * 12)
    assert not checks.check_dense_inputs(24 + 4 * 12)
    assert not checks.check_dense_inputs(None)
    out = capsys.readouterr().out
    assert out.count("Correct!") == 4 and "Not answered yet" in out


@pytest.mark.parametrize("arch", ["alexnet", "resnet"])
def test_predict_keeps_the_models_dtype_and_batches_agree(arch):
    torch.manual_seed(0)
    model = cnn.build(arch).double().eval()
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    logits = predict(model, x, batch_size=2)                            # batches of 2, 2, 1
    assert logits.dtype == torch.float64 and logits.shape == (5, 10)
    with torch.no_grad():
        expected = model(x)                                             # one batch of 5: other kernel paths
    assert_close_scaled(logits, expected, terms_scale(model, x), ulps=4096)
    labels = logits.argmax(1)                                           # accuracy's own path: no near-tie issue
    labels[:2] = (labels[:2] + 1) % 10                                  # 3 of 5 right
    assert accuracy(model, x, labels, batch_size=2) == 3 / 5            # exactly: a count, not a float32 mean
    assert predict(model.float(), x, batch_size=2).dtype == torch.float32  # float64 images, a float32 model


def test_count_flops_in_the_models_dtype():
    model = cnn.build("resnet")
    assert count_flops(model.double()) == count_flops(model.float()) > 0


def test_googlenet_features_width_is_as_documented():
    assert cnn.build("googlenet").features(torch.rand(2, 1, 28, 28)).shape == (2, 192)


def test_accuracy_and_fit_reject_bad_labels_and_tiny_sets():
    from course_lib.cnn.train import accuracy, fit

    model = cnn.build("resnet")
    with pytest.raises(ValueError, match=r"\(4,\)"):
        accuracy(model, torch.rand(4, 1, 28, 28), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size=128"):
        fit(model, torch.rand(100, 1, 28, 28), torch.zeros(100, dtype=torch.long), epochs=1, progress=False)


def test_seconds_per_step_times_a_copy_and_leaves_the_model_untouched():
    from course_lib.cnn.train import seconds_per_step

    torch.manual_seed(0)
    model = cnn.build("resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = seconds_per_step(model, torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)), steps=2)
    assert 0 < t < 60
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics unchanged


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_config_budget_is_steps_or_seconds(profile):
    from course_lib.cnn.config import config

    cfg = config(profile)
    assert (cfg.steps is None) != (cfg.seconds is None)                 # exactly one budget per profile
    assert cfg.deg_blocks[0] < cfg.deg_blocks[1]                        # a shallow and a deeper stack


@pytest.mark.parametrize("name", ["fmnist_alexnet15", "fmnist_googlenet", "fmnist_classifier", "fmnist_densenet"])
def test_shipped_15_epoch_cnns_load_without_training_and_classify_fashion_mnist(name, one_thread):
    """Notebook 01 ranks these four after 15 epochs each: each must be the shipped file (a fallback would train a
    3-epoch model inside the notebook) and, on the first 2,000 test images, be far above the 10 % of a constant
    guess and near its manifest accuracy (92-94 % on all 10,000; the standard error on 2,000 is about 0.6 %)."""
    from course_lib.cnn.classifier import load_classifier
    from course_lib.data import DataNotFoundError, fashion_mnist
    try:
        test = fashion_mnist("test")
    except DataNotFoundError:
        pytest.skip("real Fashion-MNIST absent")
    model = load_classifier("cpu", profile="cpu", name=name)
    entry = model.checkpoint_entry
    assert entry["origin"] == "shipped" and entry["metrics"]["epochs"] == 15
    assert accuracy(model, test.images[:2000], test.labels[:2000]) >= 0.90
