"""Notebook 11's exercises: the receptive-field kernel written by hand passes (walking back, or forward with the
jump), its plausible wrong versions (kernels summed, strides ignored, walking from the input end, an off-by-one)
fail; the paper's 70x70 PatchGAN passes as 70 and rejects the plausible slips."""

from __future__ import annotations

import pytest
from exercise_checks import assert_hand_check, passes

from course_lib.translation import checks
from course_lib.translation.pix2pix import patch_receptive_field


def walk_back(layers):
    r = 1
    for k, s in reversed(layers):
        r = s * r + (k - s)
    return r


def walk_forward_with_jump(layers):             # the other textbook form: r += (k - 1) * jump, jump *= s
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def walk_from_input_end(layers):                 # the right update applied to the layers in the wrong order
    r = 1
    for k, s in layers:
        r = s * r + (k - s)
    return r


@pytest.mark.parametrize("wrong", [
    lambda layers: sum(k for k, _ in layers) or 1,                      # kernels summed
    lambda layers: 1 + sum(k - 1 for k, _ in layers),                  # strides ignored
    walk_from_input_end,
    lambda layers: walk_back(layers) + 1,                              # off by one
    lambda layers: walk_back(layers[:-1]),                             # the output layer forgotten
], ids=["sum-of-kernels", "strides-ignored", "from-input-end", "off-by-one", "last-layer-forgotten"])
def test_receptive_field_kernel_rejects_wrong_kernels(wrong, capsys):
    assert not passes(checks.check_receptive_field_kernel(wrong))
    assert "Not quite" in capsys.readouterr().out


def test_receptive_field_kernel_accepts_both_correct_forms(capsys):
    assert passes(checks.check_receptive_field_kernel(walk_back))
    out = capsys.readouterr().out
    assert out.startswith("Correct! my_receptive_field agrees with course_lib.translation.pix2pix.patch_receptive_field")
    assert passes(checks.check_receptive_field_kernel(walk_forward_with_jump))
    assert not passes(checks.check_receptive_field_kernel(lambda layers: None))
    assert "Not answered yet" in capsys.readouterr().out


def test_receptive_field_cases_are_seeded_and_separate_the_wrong_orders():
    cases = checks.receptive_field_cases()
    assert cases == checks.receptive_field_cases()
    descriptions = " ".join(d for d, _ in cases)
    assert "empty" in descriptions and "PatchGAN" in descriptions
    # at least one case tells the walk from the input end apart from the right one (it does on mixed strides)
    assert any(walk_from_input_end(args[0]) != patch_receptive_field(args[0]) for _, args in cases)
    assert all(walk_forward_with_jump(args[0]) == patch_receptive_field(args[0]) for _, args in cases)


def test_paper_patchgan(capsys):
    assert patch_receptive_field(checks.PAPER_PATCHGAN) == 70
    assert_hand_check(checks.check_paper_patchgan, 70, 70.0,
                      [20,      # the kernels summed
                       16,      # 1 -> 4 -> 7 -> 16: three layers, the "16x16 PatchGAN"
                       34,      # the output conv forgotten
                       28,      # walked from the input end
                       71], capsys)
