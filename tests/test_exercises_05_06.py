"""Notebooks 05 and 06's exercises: the kernel checks pass the notebooks' solutions and fail plausible wrong
kernels (naming the input that disagrees), the hand checks accept the right and the correctly rounded answers
and reject the plausible wrong ones, and the predictions match what the committed cpu run measured."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch

from course_lib.autoencoders import checks as ae
from course_lib.autoencoders.kernels import k_sparse, sigmoid_contractive_penalty
from course_lib.checks import Verdict, check_kernel
from course_lib.maskrcnn import checks as seg
from course_lib.maskrcnn.roi import roi_align, roi_pool
from course_lib.editions import solution_regions
from course_lib.results import metrics_from_notebook

ROOT = Path(__file__).resolve().parents[1]
NB05, NB06 = ROOT / "notebooks" / "05_mask_rcnn.ipynb", ROOT / "notebooks" / "06_autoencoders.ipynb"


def code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def notebook_function(path: Path, name: str):
    """The complete edition's solution: the cell defining ``name``, run up to its check call."""
    source = next(s for s in code_cells(path) if f"def {name}(" in s)
    lines = source.split("\n")
    end = next(i for i, line in enumerate(lines) if line.startswith("check_kernel("))
    scope = {"torch": torch, "math": math}
    exec("\n".join(lines[:end]), scope)
    return scope[name]


def notebook_answer(path: Path, check_name: str):
    """The value the complete edition assigns to ``answer`` in the cell that calls ``check_name(answer)``."""
    source = next(s for s in code_cells(path) if f"{check_name}(answer)" in s)
    (start, end), = solution_regions(source)
    scope = {"math": math}
    exec("\n".join(source.split("\n")[start + 1:end]), scope)
    return scope["answer"]


def notebook_prediction(path: Path, marker: str):
    source = next(s for s in code_cells(path) if "my_prediction =" in s and marker in s)
    (start, end), = solution_regions(source)
    scope = {}
    exec("\n".join(source.split("\n")[start + 1:end]), scope)
    return scope["my_prediction"]


def run_check(fn, reference, cases, capsys) -> tuple[Verdict, str]:
    verdict = check_kernel(fn, reference, cases, name="mine", reference_name="ref", hint="h")
    return verdict, capsys.readouterr().out


# ================================================================================ 05: RoIAlign for one RoI


def roi_align_variant(shift=0.5, centre=0.5, zero_outside=True, swap_axes=False, nearest=False, min_one_cell=False):
    """A plain-Python RoIAlign of one RoI with one deliberate mistake switched on (or none)."""

    def fn(f, box, output_size, sampling_ratio):
        C, H, W = f.shape
        P, s = output_size, sampling_ratio
        x0, y0, x1, y1 = (box - shift).tolist()
        if swap_axes:
            x0, y0, x1, y1 = y0, x0, y1, x1
        bin_h, bin_w = (y1 - y0) / P, (x1 - x0) / P
        if min_one_cell:                                             # the aligned=False rule: boxes >= 1 cell
            bin_h, bin_w = max(y1 - y0, 1.0) / P, max(x1 - x0, 1.0) / P

        def read(y, x):
            if zero_outside and (y < -1 or y > H or x < -1 or x > W):
                return f.new_zeros(C)
            y, x = min(max(y, 0.0), H - 1), min(max(x, 0.0), W - 1)
            if nearest:
                return f[:, round(y), round(x)]
            i, j = int(y), int(x)
            i1, j1 = min(i + 1, H - 1), min(j + 1, W - 1)
            ly, lx = y - i, x - j
            return ((1 - ly) * (1 - lx) * f[:, i, j] + (1 - ly) * lx * f[:, i, j1]
                    + ly * (1 - lx) * f[:, i1, j] + ly * lx * f[:, i1, j1])

        out = f.new_zeros(C, P, P)
        for p in range(P):
            for q in range(P):
                for a in range(s):
                    for b in range(s):
                        out[:, p, q] += read(y0 + (p + (a + centre) / s) * bin_h, x0 + (q + (b + centre) / s) * bin_w)
        return out / s**2

    return fn


def test_roi_align_cases_are_seeded_float64_with_edge_cases():
    cases = seg.roi_align_cases()
    again = seg.roi_align_cases()
    assert len(cases) >= 4 and sum(d.startswith("edge") for d, _ in cases) >= 2
    for (d, (f, box, P, s)), (_, (f2, box2, _, _)) in zip(cases, again):
        assert f.dtype == box.dtype == torch.float64 and f.ndim == 3 and box.shape == (4,)
        assert torch.equal(f, f2) and torch.equal(box, box2) and P >= 1 and s >= 1
    shapes = {tuple(f.shape[1:]) for _, (f, _, _, _) in cases}
    assert any(h != w for h, w in shapes)                              # swapped axes cannot pass
    f, box, _, _ = cases[3][1]                                         # partly outside: beyond one cell, and within
    assert box[0] - 0.5 < -1 and box[3] - 0.5 > f.shape[1]
    _, box, P, _ = cases[4][1]
    assert (box[2] - box[0]) / P < 1 and (box[3] - box[1]) / P < 1   # smaller than a cell


def test_reference_is_course_lib_roi_align_for_one_roi():
    f, box, P, s = seg.roi_align_cases()[0][1]
    rois = torch.cat([box.new_zeros(1, 1), box[None]], 1)              # (1, 5) = [batch index, x0, y0, x1, y1]
    assert torch.equal(seg.roi_align_one(f, box, P, s), roi_align(f[None], rois, P, 1.0, s, aligned=True)[0])


def test_the_notebook_solution_and_a_plain_loop_pass(capsys):
    for fn in (notebook_function(NB05, "my_roi_align"), roi_align_variant()):
        ok, out = run_check(fn, seg.roi_align_one, seg.roi_align_cases(), capsys)
        assert ok and out.startswith("Correct! mine agrees with ref on all 5 inputs")


@pytest.mark.parametrize("mistake, first_bad", [
    ({"shift": 0.0}, 1),                    # aligned=False: no half-cell shift
    ({"centre": 0.0}, 1),                   # samples at bin corners, not centres
    ({"swap_axes": True}, 1),               # x and y swapped
    ({"nearest": True}, 1),                 # nearest cell instead of bilinear
    ({"zero_outside": False}, 4),           # clamps points far outside instead of reading 0
    ({"min_one_cell": True}, 5),            # forces the box to >= 1 cell (the original, unaligned code)
])
def test_wrong_roi_align_kernels_fail_and_name_the_input(mistake, first_bad, capsys):
    ok, out = run_check(roi_align_variant(**mistake), seg.roi_align_one, seg.roi_align_cases(), capsys)
    assert not ok and f"input {first_bad} (" in out and "max relative error" in out


def test_a_stub_is_not_answered_yet(capsys):
    ok, out = run_check(lambda *args: None, seg.roi_align_one, seg.roi_align_cases(), capsys)
    assert not ok and out.startswith("Not answered yet")


def test_roi_align_changes_at_every_quarter_pixel_step_and_roi_pool_does_not():
    """What the prediction cell measures, on a seeded random map: RoIAlign is continuous in the box, RoIPool
    piecewise constant."""
    fmap = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    box = torch.tensor([35.3, 7.4, 53.3, 35.9])
    outs = {fn: [fn(fmap, [(box + torch.tensor([s, 0.0, s, 0.0]))[None]], 7, 1 / 4, *extra)
                 for s in torch.arange(0, 8.25, 0.25)] for fn, extra in ((roi_align, (2,)), (roi_pool, ()))}
    changed = {fn: sum(not torch.equal(a, b) for a, b in zip(o, o[1:])) for fn, o in outs.items()}
    assert changed[roi_align] == 32 and 0 < changed[roi_pool] < 16
    assert notebook_prediction(NB05, "quarter pixel") == "RoIAlign"


# ---------------------------------------------------------------------------------- 05: hand computations


def test_check_roi_align_value(capsys):
    # aligned: box (1, 1, 3, 2) -> (0.5, 0.5, 2.5, 1.5), centre (x, y) = (1.5, 1.0), f = 10 y + x = 11.5
    assert seg.expected_roi_align_value() == pytest.approx(11.5)
    assert seg.check_roi_align_value(11.5) and seg.check_roi_align_value(11.48)
    assert seg.check_roi_align_value(notebook_answer(NB05, "check_roi_align_value"))
    for wrong in (17.0,      # no half-cell shift: centre (2, 1.5)
                  16.0,      # x and y swapped: 10 x + y at (1.5, 1.0)
                  11.0,      # rounded to a whole cell
                  11.6):     # not to one decimal
        assert not seg.check_roi_align_value(wrong), wrong
    assert not seg.check_roi_align_value(None) and "Not answered yet" in capsys.readouterr().out


def test_check_roi_pool_shift_tells_floor_from_round(capsys):
    assert seg.expected_roi_pool_shift() == 1.0                        # 15 / 4 = 3.75 -> 4 cells = 16 px
    assert math.floor(15 / 4) != round(15 / 4)                          # the question tells the two apart
    assert seg.check_roi_pool_shift(1) and seg.check_roi_pool_shift(1.0) and seg.check_roi_pool_shift(1.04)
    assert seg.check_roi_pool_shift(notebook_answer(NB05, "check_roi_pool_shift"))
    for wrong in (3,         # floor: 3 cells = 12 px
                  0,         # no rounding
                  0.25,      # in cells, not pixels
                  0.75,      # floor, in cells
                  4):        # a whole stride
        assert not seg.check_roi_pool_shift(wrong), wrong
    assert not seg.check_roi_pool_shift(None) and "Not answered yet" in capsys.readouterr().out


def test_check_mask_outputs(capsys):
    assert seg.expected_mask_outputs() == 80 * 28 * 28
    assert seg.check_mask_outputs(62720) and seg.check_mask_outputs(62720.0)
    assert seg.check_mask_outputs(notebook_answer(NB05, "check_mask_outputs"))
    for wrong in (28 * 28,          # one mask
                  81 * 28 * 28,     # a background mask too
                  80 * 14 * 14,     # the RoI features' size
                  62700):           # rounded: the count is exact
        assert not seg.check_mask_outputs(wrong), wrong
    assert not seg.check_mask_outputs(None) and "Not answered yet" in capsys.readouterr().out


def test_check_mask_iou_accepts_the_rounded_answer(capsys):
    assert seg.expected_mask_iou() == pytest.approx(4 / 28)
    assert seg.check_mask_iou(4 / 28) and seg.check_mask_iou(0.143) and seg.check_mask_iou(0.1429)
    assert seg.check_mask_iou(notebook_answer(NB05, "check_mask_iou"))
    for wrong in (4 / 32,        # union without removing the overlap
                  4 / 16,        # overlap / one mask
                  9 / 23,        # a 3 x 3 overlap (off by one)
                  1 / 17,        # pixel indices 0-3, 2-5 taken as box corners
                  0.14,          # 2 significant digits
                  0.142):        # truncated, not rounded
        assert not seg.check_mask_iou(wrong), wrong
    assert not seg.check_mask_iou(None) and "Not answered yet" in capsys.readouterr().out


def test_seg_checks_return_verdicts():
    for check, answer in ((seg.check_roi_align_value, 11.5), (seg.check_roi_pool_shift, 1.0),
                          (seg.check_mask_outputs, 62720), (seg.check_mask_iou, 0.143)):
        assert isinstance(check(answer), Verdict) and check.__annotations__["return"] in ("Verdict", Verdict)


# ================================================================================ 06: k-sparse and contractive


def ks_topk(h, k):
    idx = h.topk(k, dim=1).indices
    return torch.where(torch.zeros_like(h, dtype=torch.bool).scatter(1, idx, True), h, torch.zeros_like(h))


def ks_threshold(h, k):                      # right too: no tie straddles the k-th place in the cases
    return h * (h >= h.topk(k, dim=1).values[:, -1:])


def ks_next_value(h, k):                     # keeps h > the (k+1)-th largest: right until k = D
    return h * (h > h.sort(1, descending=True).values[:, k:k + 1])


def test_k_sparse_cases_are_seeded_with_edge_cases():
    cases, again = ae.k_sparse_cases(), ae.k_sparse_cases()
    assert all(torch.equal(a[1][0], b[1][0]) and a[1][0].dtype == torch.float64 for a, b in zip(cases, again))
    ks = {k for _, (h, k) in cases}
    assert 1 in ks and any(k == h.shape[1] for _, (h, k) in cases)
    h, k = cases[-1][1]
    assert (h < 0).all(1).any() and any(len(row.unique()) < len(row) for row in h)   # an all-negative row, ties


def test_k_sparse_solutions_pass(capsys):
    for fn in (notebook_function(NB06, "my_k_sparse"), ks_topk, ks_threshold):
        ok, out = run_check(fn, k_sparse, ae.k_sparse_cases(), capsys)
        assert ok and "on all 5 inputs" in out


@pytest.mark.parametrize("wrong, first_bad", [
    (lambda h, k: ks_topk(h.abs(), k) * h.sign(), 1),                 # the k largest in size
    (lambda h, k: ks_topk(h, k).clamp(min=0), 1),                     # a ReLU on top
    (lambda h, k: ks_topk(h, k - 1) if k > 1 else h * 0, 1),          # off by one
    (lambda h, k: h * (h > h.topk(k, dim=1).values[:, -1:]), 1),      # strict: drops the k-th itself
    (lambda h, k: -ks_topk(-h, k), 1),                                # the k smallest
    (lambda h, k: h.sort(1, descending=True).values * (torch.arange(h.shape[1]) < k), 1),  # sorted, moved
    (ks_next_value, 4),                                               # breaks at k = D only
])
def test_wrong_k_sparse_kernels_fail(wrong, first_bad, capsys):
    ok, out = run_check(wrong, k_sparse, ae.k_sparse_cases(), capsys)
    assert not ok and f"input {first_bad} (" in out


def cp_right(h, W):
    return ((h * (1 - h)) ** 2 * W.pow(2).sum(1)).sum(1).mean()


def cp_clamped(h, W):                        # h clamped "for safety": wrong at saturated units only
    h = h.clamp(1e-3, 1 - 1e-3)
    return ((h * (1 - h)) ** 2 @ W.pow(2).sum(1)).mean()


def test_contractive_cases_are_seeded_with_edge_cases():
    cases, again = ae.contractive_cases(), ae.contractive_cases()
    assert all(torch.equal(a[1][0], b[1][0]) and torch.equal(a[1][1], b[1][1]) for a, b in zip(cases, again))
    assert any(h.shape[0] == 1 for _, (h, _) in cases) and all(W.shape[0] != W.shape[1] for _, (_, W) in cases)
    h, _ = cases[-1][1]
    assert (h == 0).any() and (h == 1).any() and (h == 0.5).any()


def test_contractive_solutions_pass(capsys):
    for fn in (notebook_function(NB06, "my_contractive_penalty"), cp_right):
        ok, out = run_check(fn, sigmoid_contractive_penalty, ae.contractive_cases(), capsys)
        assert ok and "on all 4 inputs" in out


@pytest.mark.parametrize("wrong, first_bad", [
    (lambda h, W: ((h * h) ** 2 * W.pow(2).sum(1)).sum(1).mean(), 1),              # h^2 for h (1 - h)
    (lambda h, W: ((1 - h) ** 2 * W.pow(2).sum(1)).sum(1).mean(), 1),              # (1 - h) alone
    (lambda h, W: (h * (1 - h) * W.pow(2).sum(1)).sum(1).mean(), 1),               # derivative not squared
    (lambda h, W: ((h * (1 - h)) ** 2 * W.norm(dim=1)).sum(1).mean(), 1),          # ||W_j||, not squared
    (lambda h, W: ((h * (1 - h)) ** 2 * W.pow(2).sum(1)).sum(), 1),                # summed over the batch
    (lambda h, W: ((h * (1 - h)) ** 2 @ W.pow(2).sum(0)).mean(), 1),               # the wrong axis of W (raises)
    (lambda h, W: float(cp_right(h, W)), 1),                                       # not a tensor
    (cp_clamped, 4),                                                               # saturated units not 0
])
def test_wrong_contractive_kernels_fail(wrong, first_bad, capsys):
    ok, out = run_check(wrong, sigmoid_contractive_penalty, ae.contractive_cases(), capsys)
    assert not ok and f"input {first_bad} (" in out


def test_the_jacobian_prediction_matches_the_committed_cpu_run():
    metrics = metrics_from_notebook(nbformat.read(NB06, as_version=4))
    norms = {name: metrics[f"{name.replace('-', '_')}_jacobian_norm"]
             for name in ("plain", "denoising", "sparse", "k-sparse", "contractive")}
    smallest, second = sorted(norms, key=norms.get)[:2]
    assert notebook_prediction(NB06, "Jacobian") == smallest == "contractive"
    assert norms[second] > 1.5 * norms[smallest]                      # a clear gap, not a near-tie



def test_section_2_prose_matches_the_committed_cpu_run():
    """What the markdown beside the copy and memorizing experiments says, measured in the committed cpu run."""
    m = metrics_from_notebook(nbformat.read(NB06, as_version=4))
    kinds = ("test", "digits", "smooth_noise", "white_noise")
    for kind in kinds:  # FVU = MSE / the kind's pixel variance: one variance per kind, whichever model
        assert m[f"overcomplete_{kind}_fvu"] / m[f"bottleneck_{kind}_fvu"] == pytest.approx(
            m[f"overcomplete_{kind}_mse"] / m[f"bottleneck_{kind}_mse"], rel=1e-3)
    # digits about as well as clothes; smooth noise worse than the bottleneck on clothes, though raw MSE says better
    assert m["overcomplete_digits_fvu"] == pytest.approx(m["overcomplete_test_fvu"], rel=0.25)
    assert m["overcomplete_smooth_noise_fvu"] > m["bottleneck_test_fvu"]
    assert m["overcomplete_smooth_noise_mse"] < m["bottleneck_test_mse"]
    assert m["overcomplete_white_noise_fvu"] > 0.5                      # "misses most of its variance"
    assert m["bottleneck_digits_fvu"] < 1 < min(m["bottleneck_smooth_noise_fvu"], m["bottleneck_white_noise_fvu"])
    # memorizing: better than both baselines on its own images, worse on test images, a gap of several times
    train, test = m["memorizing_train_mse"], m["memorizing_test_mse"]
    assert train < m["deep_many_train_mse"] and train < m["pca_few_train_mse"]
    assert test > m["deep_many_test_mse"] and test > m["pca_few_test_mse"] and test > 3 * train
    assert m["deep_many_test_mse"] == pytest.approx(m["deep_many_train_mse"], rel=0.2)
    # section 4: at sigma = 0.5 the contractive AE is about as good as the denoising AE ("the two are close")
    assert m["contractive_gauss_mse"] == pytest.approx(m["denoising_gauss_mse"], rel=0.1)

# ---------------------------------------------------------------------------------- 06: hand computations


def test_check_principal_angle(capsys):
    assert ae.expected_principal_angle() == pytest.approx(math.degrees(math.acos(math.sqrt(2 / 3))))
    assert ae.check_principal_angle(35.3) and ae.check_principal_angle(35.26)
    assert ae.check_principal_angle(notebook_answer(NB06, "check_principal_angle"))
    for wrong in (54.7,      # the angle with the plane's normal
                  0.6155,    # radians
                  45.0, 35.2, 35.0):
        assert not ae.check_principal_angle(wrong), wrong
    assert not ae.check_principal_angle(None) and "Not answered yet" in capsys.readouterr().out


def test_check_kl_sparsity(capsys):
    right = 100 * (0.05 * math.log(0.05 / 0.5) + 0.95 * math.log(0.95 / 0.5))     # 49.463...
    assert ae.check_kl_sparsity(right) and ae.check_kl_sparsity(49.46)
    assert ae.check_kl_sparsity(notebook_answer(NB06, "check_kl_sparsity"))
    for wrong in (100 * (0.05 * math.log2(0.1) + 0.95 * math.log2(1.9)),          # log base 2
                  100 * (0.5 * math.log(0.5 / 0.05) + 0.5 * math.log(0.5 / 0.95)),  # KL(rho_hat || rho)
                  right / 100,                                                   # one unit
                  49.5, 49.47, 0.0):                                             # not to two decimals
        assert not ae.check_kl_sparsity(wrong), wrong
    assert not ae.check_kl_sparsity(None) and "Not answered yet" in capsys.readouterr().out


def test_check_k_sparse(capsys):
    assert ae.check_k_sparse([0.0, 0.0, 2.0, 0.7, 0.0]) and ae.check_k_sparse((0, 0, 2, 0.7, 0))
    assert ae.check_k_sparse(notebook_answer(NB06, "check_k_sparse"))
    for wrong in ([0.0, -1.2, 2.0, 0.0, 0.0],    # the k largest in size
                  [0.3, 0.0, 2.0, 0.7, 0.0],     # k = 3
                  [2.0, 0.7],                    # only the kept values
                  [0.0, -1.2, 0.0, 0.0, 0.1],    # the k smallest
                  [0.0, 0.0, 2.0, 0.0, 0.0]):    # k = 1
        assert not ae.check_k_sparse(wrong), wrong
    assert not ae.check_k_sparse(None) and "Not answered yet" in capsys.readouterr().out


def test_check_contractive_unit_tells_the_three_factors_apart(capsys):
    h, w = 0.2, 4.0
    assert len({h * (1 - h), h * h, (1 - h) ** 2}) == 3                # h = 0.5 would make them all 0.25
    assert ae.check_contractive_unit(0.1024) and ae.check_contractive_unit(0.102)
    assert ae.check_contractive_unit(notebook_answer(NB06, "check_contractive_unit"))
    s = 1 / (1 + math.exp(-h))
    for wrong in (h * h * w,                 # h^2
                  (1 - h) ** 2 * w,          # (1 - h)^2
                  h * (1 - h) * w,           # derivative not squared
                  (h * (1 - h)) ** 2 * 2,    # ||W_j|| for ||W_j||^2
                  (h * (1 - h)) ** 2,        # without ||W_j||^2
                  (s * (1 - s)) ** 2 * w,    # h taken as the pre-activation
                  0.1):                      # not to 3 significant digits
        assert not ae.check_contractive_unit(wrong), wrong
    assert not ae.check_contractive_unit(None) and "Not answered yet" in capsys.readouterr().out


def test_check_ae_parameters(capsys):
    right = 784 * 32 + 32 + 32 * 784 + 784
    assert ae.check_ae_parameters(right) and ae.check_ae_parameters(float(right))
    assert ae.check_ae_parameters(notebook_answer(NB06, "check_ae_parameters"))
    for wrong in (2 * 784 * 32,              # no biases
                  2 * 784 * 32 + 32,         # the encoder's bias only
                  2 * 784 * 32 + 784,        # the decoder's bias only
                  51000):                    # rounded: the count is exact
        assert not ae.check_ae_parameters(wrong), wrong
    assert not ae.check_ae_parameters(None) and "Not answered yet" in capsys.readouterr().out


def test_ae_checks_return_verdicts():
    for check, answer in ((ae.check_principal_angle, 35.3), (ae.check_kl_sparsity, 49.46),
                          (ae.check_k_sparse, [0, 0, 2, 0.7, 0]), (ae.check_contractive_unit, 0.102),
                          (ae.check_ae_parameters, 50992)):
        assert isinstance(check(answer), Verdict) and check.__annotations__["return"] in ("Verdict", Verdict)
