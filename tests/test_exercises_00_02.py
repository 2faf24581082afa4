"""Notebooks 00-02's exercise checks: the right answer passes, a correctly rounded one passes, the plausible
wrong answers fail; the write-the-kernel inputs accept course_lib's kernel and reject wrong ones, naming the
input that disagrees."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks as core
from course_lib.checks import Verdict, check_kernel
from course_lib.cnn import checks as cnn_checks
from course_lib.cnn.resnet import ResidualBlock
from course_lib.inside import checks as inside_checks
from course_lib.inside.saliency import saliency


def verdicts(check, answers, *args, **kwargs) -> list[bool]:
    out = [check(a, *args, **kwargs) for a in answers]
    assert all(isinstance(v, Verdict) for v in out)
    return [bool(v) for v in out]


# ---------------------------------------------------------------------------------------------------- 00

def test_check_images_per_class(capsys):
    assert verdicts(core.check_images_per_class, [6000, 60_000 // 10, 6000.0]) == [True] * 3
    # the total, the test set's share per class, train + test per class, a rounding that is not exact
    assert verdicts(core.check_images_per_class, [60_000, 1000, 7000, 6004.0, 5999]) == [False] * 5
    assert not core.check_images_per_class(None) and "Not answered yet" in capsys.readouterr().out


def test_check_scene_mask_shape():
    assert verdicts(core.check_scene_mask_shape, [(3, 64, 64), [3, 64, 64]]) == [True, True]
    assert verdicts(core.check_scene_mask_shape, [(64, 64, 3), (64, 64), (1, 64, 64), (3, 1, 64, 64)]) == [False] * 4
    assert core.check_scene_mask_shape((4, 48, 48), n_objects=4, size=48)
    assert not core.check_scene_mask_shape(None)


def test_check_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    assert core.check_profile("smoke")
    assert verdicts(core.check_profile, ["auto", "cpu", "gpu", None]) == [False] * 4
    assert core.check_profile("cpu", env_value="cpu")
    assert __import__("os").environ["COURSE_PROFILE"] == "gpu"          # the environment is given back


# ---------------------------------------------------------------------------------------------------- 01

def test_check_conv_flops():
    right = 2 * 16 * 32 * 9 * 14 * 14
    assert verdicts(cnn_checks.check_conv_flops, [right, float(right)]) == [True, True]
    wrong = [right // 2,                      # multiply-adds, not FLOPs
             2 * 16 * 32 * 14 * 14,           # the k x k window forgotten
             2 * 16 * 32 * 9 * 12 * 12,       # no padding: a 12 x 12 output
             2 * 16 * 32 * 9 * 14 * 14 + 2 * 32 * 14 * 14,  # a bias that is not there
             round(right, -4)]                # rounded, but the question asks for the exact integer
    assert verdicts(cnn_checks.check_conv_flops, wrong) == [False] * len(wrong)


def test_check_inception_channels():
    assert verdicts(cnn_checks.check_inception_channels, [16 + 32 + 12 + 20, 80.0]) == [True, True]
    wrong = [64,                              # "the module keeps its width"
             16 + 24 + 32 + 8 + 12 + 20,      # every conv's width summed, reduce layers included
             16 + 32 + 12 + 64,               # the pool branch passing its 64 channels through
             16 + 32 + 12,                    # the three conv branches only
             16 + 24 + 8 + 20]                # the reduce widths instead of the 3x3 and 5x5 widths
    assert len(set(wrong)) == len(wrong) and 80 not in wrong
    assert verdicts(cnn_checks.check_inception_channels, wrong) == [False] * len(wrong)
    # the old default module (64 -> 64) is still computed right when asked for
    assert cnn_checks.check_inception_channels(64, sizes=(16, 16, 32, 4, 8, 8))


def test_check_residual_shape():
    assert verdicts(cnn_checks.check_residual_shape, [(2, 32, 8, 8), [2, 32, 8, 8]]) == [True, True]
    wrong = [(2, 32, 7, 7),                   # floor(15 / 2): the odd size tells floor from ceil
             (2, 16, 8, 8),                   # channels unchanged
             (2, 32, 15, 15),                 # stride ignored
             (2, 32, 7.5, 7.5),               # H / s without rounding
             (32, 8, 8)]                      # the batch dimension dropped
    assert verdicts(cnn_checks.check_residual_shape, wrong) == [False] * len(wrong)
    assert cnn_checks.check_residual_shape((2, 32, 14, 14), size=28)


def test_check_dense_inputs():
    assert verdicts(cnn_checks.check_dense_inputs, [32 + 4 * 8, 64.0], c_in=32, growth=8, layer=5) == [True, True]
    wrong = [32 + 5 * 8,                      # off by one: counts the layer's own output
             32 + 6 * 8,                      # the block's output width
             32,                              # no concatenation
             8]                               # the growth rate alone
    assert verdicts(cnn_checks.check_dense_inputs, wrong, c_in=32, growth=8, layer=5) == [False] * len(wrong)


def _bn_eval(h, bn):
    c = (1, -1, 1, 1)
    return ((h - bn.running_mean.view(c)) / torch.sqrt(bn.running_var.view(c) + bn.eps) * bn.weight.view(c)
            + bn.bias.view(c))


def _residual(block: ResidualBlock, x: torch.Tensor, *, final_relu=True, relu_before_sum=False, shortcut="auto",
              train_bn=False) -> torch.Tensor:
    """The residual block written out, with switches for the plausible mistakes."""
    bn = (lambda h, m: F.batch_norm(h, None, None, m.weight, m.bias, training=True)) if train_bn else _bn_eval
    conv1, bn1, _, conv2, bn2 = block.residual
    h = F.relu(bn(F.conv2d(x, conv1.weight, stride=conv1.stride, padding=1), bn1))
    f = bn(F.conv2d(h, conv2.weight, padding=1), bn2)
    if relu_before_sum:
        f = F.relu(f)
    def projection():
        conv_s, bn_s = block.shortcut
        return bn(F.conv2d(x, conv_s.weight, stride=conv_s.stride), bn_s)

    if shortcut == "identity-when-channels-match":
        s = x if x.shape[1] == f.shape[1] else projection()
    elif shortcut == "none":
        s = torch.zeros_like(f)
    else:
        s = x if isinstance(block.shortcut, nn.Identity) else projection()
    return F.relu(f + s) if final_relu else f + s


def run_residual(fn, capsys):
    ok = check_kernel(fn, cnn_checks.residual_reference, cnn_checks.residual_cases(), name="my_residual_forward",
                      reference_name="ResidualBlock.forward", hint="h")
    return bool(ok), capsys.readouterr().out


def test_residual_cases_accept_the_block_written_out(capsys):
    ok, out = run_residual(_residual, capsys)
    assert ok and "on all 4 inputs" in out and "course_lib's `ResidualBlock.forward`" in out
    cases = cnn_checks.residual_cases()
    assert any(x.shape[-1] % 2 for _, (b, x) in cases if b.residual[0].stride == (2, 2))   # stride 2, odd size
    assert any(len(x) == 1 for _, (_, x) in cases)                                          # a batch of one
    assert {isinstance(b.shortcut, nn.Identity) for _, (b, _) in cases} == {True, False}
    assert all(x.dtype == torch.float64 and not b.training for _, (b, x) in cases)
    assert cases[0][1][1].equal(cnn_checks.residual_cases()[0][1][1])                       # seeded


@pytest.mark.parametrize("mistake, first_bad", [
    ({"final_relu": False}, 1),                               # forgets the ReLU after the sum
    ({"relu_before_sum": True}, 1),                           # ReLU(F(x)) + x
    ({"shortcut": "none"}, 1),                                # a plain block: no shortcut at all
    ({"train_bn": True}, 1),                                  # batch statistics instead of the running ones
    ({"shortcut": "identity-when-channels-match"}, 3),        # ignores the stride: fails on the stride-2 block
])
def test_residual_cases_reject_wrong_blocks(mistake, first_bad, capsys):
    ok, out = run_residual(lambda block, x: _residual(block, x, **mistake), capsys)
    assert not ok and f"input {first_bad} (" in out and out.startswith("Not quite")


def test_residual_stub_says_not_answered(capsys):
    ok, out = run_residual(lambda block, x: None, capsys)
    assert not ok and out.startswith("Not answered yet")


# ---------------------------------------------------------------------------------------------------- 02

def test_check_receptive_field(capsys):
    right = 5 + 2 * 1 + 2 * 2 + 2 * 2 + 2 * 4
    assert right == 23 and verdicts(inside_checks.check_receptive_field, [right, 23.0]) == [True, True]
    wrong = [5 + 2 + 2 + 2 + 2,               # pools' strides ignored: the jump stays 1
             5 + 2 + 2,                       # the pools left out
             11,                              # conv2's field (printed in the notebook)
             28,                              # the whole image
             31]                              # the field of conv[10]
    assert verdicts(inside_checks.check_receptive_field, wrong) == [False] * len(wrong)
    assert inside_checks.check_receptive_field(11, index=4)
    assert not inside_checks.check_receptive_field(None) and "Not answered yet" in capsys.readouterr().out


class Tiny(nn.Module):
    """(N, 1, 12, 12) -> (N, 3)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(4 * 36, 3))

    def forward(self, x):
        return self.net(x)


def test_check_flip_window(capsys):
    model, image = Tiny().eval(), torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(5))
    expected = inside_checks.smallest_flip_window(model, image, stride=2)
    assert expected is not None
    assert inside_checks.check_flip_window(expected, model, image)
    assert verdicts(inside_checks.check_flip_window, [expected + 1, expected - 1, "never"], model, image) == [False] * 3
    assert not inside_checks.check_flip_window(None, model, image) and "Not answered yet" in capsys.readouterr().out

    class Constant(nn.Module):                # its prediction never changes: the answer is "never"
        def forward(self, x):
            return torch.tensor([[0.0, 1.0]]).expand(len(x), 2) + 0 * x.sum()

    assert inside_checks.check_flip_window("never", Constant(), image)
    assert not inside_checks.check_flip_window(2, Constant(), image)
    assert not inside_checks.check_flip_window(None, Constant(), image)


def test_check_saliency_argmax():
    model, image = Tiny().eval(), torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(6))
    M = saliency(model, image[None], 1)[0]
    row, col = divmod(int(M.argmax()), 12)
    assert inside_checks.check_saliency_argmax((row, col), model, image, target=1)
    wrong = [(col, row) if row != col else (row, (col + 1) % 12),   # (x, y) instead of (row, col)
             divmod(int(M.argmin()), 12),                            # the arg-min
             (row, col + 1), (int(M.argmax()), 0)]                   # off by one; the flat index
    assert verdicts(inside_checks.check_saliency_argmax, wrong, model, image, target=1) == [False] * len(wrong)


def test_check_box_iou():
    """Notebook 03's exercise (the check lives here): to 3 significant digits."""
    assert verdicts(inside_checks.check_box_iou, [150 / 650, 0.2308, 0.231]) == [True] * 3
    wrong = [150 / 800,                       # union = the sum of the areas, intersection not subtracted
             150 / 400,                       # intersection / area of one box
             0.23, 0.232, 0.25]
    assert verdicts(inside_checks.check_box_iou, wrong) == [False] * len(wrong)
    assert inside_checks.check_box_iou(0.0, (0, 0, 1, 1), (1, 1, 2, 2))


def run(fn, reference, cases, capsys):
    ok = check_kernel(fn, reference, cases, name="mine", reference_name="ref", hint="h")
    return bool(ok), capsys.readouterr().out


def test_deconv_relu_cases(capsys):
    cases = inside_checks.deconv_relu_cases()
    ok, out = run(lambda x, g: g.clamp(min=0), inside_checks.deconv_relu_reference, cases, capsys)
    assert ok and "on all 4 inputs" in out
    wrong = {"plain gradient": lambda x, g: g * (x > 0), "guided": lambda x, g: g * (x > 0) * (g > 0),
             "|g|": lambda x, g: g.abs(), "relu(x)": lambda x, g: x.clamp(min=0),
             "sign flip": lambda x, g: -g.clamp(max=0)}
    for name, fn in wrong.items():
        ok, out = run(fn, inside_checks.deconv_relu_reference, cases, capsys)
        assert not ok and "input 1 (random x and g_out" in out, name
    # wrong only where every ReLU is closed: an edge case names it
    ok, out = run(lambda x, g: g.clamp(min=0) * (x.max() > 0), inside_checks.deconv_relu_reference, cases, capsys)
    assert not ok and "input 3 (edge: every ReLU closed" in out
    ok, out = run(lambda x, g: None, inside_checks.deconv_relu_reference, cases, capsys)
    assert not ok and out.startswith("Not answered yet")


def _saliency(model, x, target, *, score="logit", reduce="max", absolute=True):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    if score == "prob":
        out = out.softmax(1)
    if score == "predicted":
        target = out.argmax(1)
    s = out.sum() if score == "all" else out.gather(1, target[:, None]).sum()
    (w,) = torch.autograd.grad(s, x)
    w = w.abs() if absolute else w
    return w.amax(dim=1) if reduce == "max" else w.mean(dim=1) if reduce == "mean" else w.sum(dim=1)


def test_saliency_cases(capsys):
    cases = inside_checks.saliency_cases()
    ok, out = run(_saliency, inside_checks.saliency_reference, cases, capsys)
    assert ok and "on all 3 inputs" in out
    assert cases[0][1][1].shape[1] == 3 and len(cases[1][1][1]) == 1
    for mistake in ({"absolute": False}, {"reduce": "mean"}, {"reduce": "sum"}, {"score": "prob"},
                    {"score": "all"}, {"score": "predicted"}):
        ok, out = run(lambda m, x, t: _saliency(m, x, t, **mistake), inside_checks.saliency_reference, cases, capsys)
        assert not ok and "input 1 (3 channels" in out, mistake
    # one class for the whole batch: right on the batch of one (input 2), wrong on input 1
    ok, out = run(lambda m, x, t: _saliency(m, x, t[:1].expand(len(x))), inside_checks.saliency_reference, cases,
                  capsys)
    assert not ok and "input 1 (" in out
    # a squeeze that drops the batch of one: the edge case names it
    ok, out = run(lambda m, x, t: _saliency(m, x, t).squeeze(), inside_checks.saliency_reference, cases, capsys)
    assert not ok and "input 2 (edge: batch of one" in out
    # the predicted class differs from the least likely one: input 3 tells them apart
    ok, out = run(lambda m, x, t: _saliency(m, x, t if len(x) != 3 else m(x).argmax(1)),
                  inside_checks.saliency_reference, cases, capsys)
    assert not ok and "input 3 (targets = the least likely" in out


def test_saliency_reference_restores_the_mode():
    model, x, target = inside_checks.saliency_cases()[0][1]
    model.train()
    inside_checks.saliency_reference(model, x, target)
    assert model.training
