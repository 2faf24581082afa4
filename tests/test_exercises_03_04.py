"""Notebooks 03 and 04's exercises: every check passes the right answer and a correctly rounded one and rejects
the plausible wrong ones; every "write the kernel" check passes course_lib's kernel and the notebook's solution,
and fails wrong kernels, naming the input where they disagree."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
import torchvision

from course_lib.checks import check_kernel
from course_lib.detection import checks
from course_lib.detection.boxes import box_iou, nms
from course_lib.detection.metrics import RECALL_LEVELS
from course_lib.inside.checks import check_box_iou
from course_lib.yolo import checks as yolo_checks
from course_lib.yolo.model import responsible_predictor, yolo_loss

ROOT = Path(__file__).resolve().parents[1]


def verdict_and_output(fn, *args, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        verdict = fn(*args, **kwargs)
    return bool(verdict), out.getvalue()


# --- notebook 03: NMS by hand ----------------------------------------------------------------------------------

def test_check_nms_accepts_the_kept_order_and_rejects_plausible_mistakes():
    assert checks.check_nms([3, 2]) and checks.check_nms((3, 2)) and checks.check_nms(torch.tensor([3, 2]))
    for wrong in ([2, 3],          # sorted by index, not by score
                  [0, 2],          # the first box taken as the best (scores ignored)
                  [3],             # a box of another place suppressed
                  [3, 2, 4],       # box 4 kept (its IoU 0.71 with box 2 overlooked)
                  [3, 0, 1, 2, 4]):  # nothing suppressed
        assert not checks.check_nms(wrong), wrong
    assert not checks.check_nms(None)


def test_check_nms_per_class_for_notebook_04():
    assert checks.check_nms([3, 0, 2], per_class=True)
    for wrong in ([3, 2],          # class-agnostic NMS: box 3 (another class) suppresses box 0
                  [0, 2, 3],       # per class, but not merged by decreasing score
                  [3, 0, 1, 2]):   # box 1 (IoU 0.68 with box 0, same class) kept
        assert not checks.check_nms(wrong, per_class=True), wrong


# --- notebook 03: AP by hand -----------------------------------------------------------------------------------

def _ap_variants(is_tp, n_gt):
    """The plausible wrong answers, each computed by its own formula."""
    precision, recall = checks.precision_recall_of(is_tp, n_gt)
    levels = RECALL_LEVELS.double()
    first = torch.searchsorted(recall, levels)
    reached = first < len(recall)
    raw = torch.zeros(101, dtype=torch.float64)
    raw[reached] = precision[first[reached]]
    envelope = precision.flip(0).cummax(0).values.flip(0)
    eleven = [float(precision[recall >= r - 1e-12].max()) if bool((recall >= r - 1e-12).any()) else 0.0
              for r in torch.linspace(0, 1, 11).double()]
    steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    hits = torch.tensor(is_tp)
    interp = torch.zeros(101, dtype=torch.float64)
    interp[reached] = envelope[first[reached]]
    return {"no running max": float(raw.mean()),
            "plain mean of precisions": float(precision.mean()),
            "11-point": sum(eleven) / 11,
            "all-point area (VOC 2010)": float((steps * envelope).sum()),
            "mean precision at the true positives": float(precision[hits].mean()),
            "averaged over the reached levels only": float(interp[reached].mean())}


def test_check_average_precision_accepts_rounding_and_rejects_the_other_aps():
    expected = 63.5 / 101                  # levels 0..0.25 at 1, 0.26..0.75 at 3/4, 0.76..1 at 0
    assert checks.check_average_precision(0.629) and checks.check_average_precision(0.6287)
    assert checks.check_average_precision(expected) and checks.check_average_precision(63.5 / 101)
    assert not checks.check_average_precision(0.628) and not checks.check_average_precision(0.63)
    variants = _ap_variants((True, False, True, True), 4)
    assert variants["no running max"] == pytest.approx(0.6081, abs=1e-4)
    for name, wrong in variants.items():
        assert abs(wrong - expected) > 0.003, name
        assert not checks.check_average_precision(wrong), name
        assert not checks.check_average_precision(round(wrong, 3)), name


def test_the_old_exercise_could_not_tell_interpolation_apart():
    """Why the detections changed: on the old ones, AP without the running max was the same number."""
    old = (True, True, False, True, False)          # precision (1, 1, 0.67, 0.75, 0.6), recall up to 0.75
    variants = _ap_variants(old, 4)
    assert checks.check_average_precision(variants["no running max"], is_tp=old, decimals=4)


# --- notebook 03: IoU by hand (course_lib.inside.checks.check_box_iou, shared with notebook 02) ----------------

def test_check_box_iou_at_three_significant_digits():
    assert check_box_iou(150 / 650) and check_box_iou(0.231) and check_box_iou(0.2308)
    for wrong in (150 / 800, 150 / 400, 0.23, 0.25, 100 / 700):
        assert not check_box_iou(wrong), wrong


# --- notebook 04: the grid and the output size by hand ---------------------------------------------------------

def test_check_grid_cell():
    assert yolo_checks.check_grid_cell((6, 4)) and yolo_checks.check_grid_cell([6, 4])
    for wrong in ((4, 6),   # (col, row)
                  (4, 2),   # the top-left corner's cell, not the centre's
                  (7, 5),   # counted from 1
                  (5, 3),   # a centre on a cell border put in the cell before
                  (5, 4)):
        assert not yolo_checks.check_grid_cell(wrong), wrong


def test_check_yolo_outputs():
    assert yolo_checks.check_yolo_outputs(1470) and yolo_checks.check_yolo_outputs(7 * 7 * 30)
    assert yolo_checks.check_yolo_outputs(1470.0)
    for wrong in (7 * 7 * 2 * 5 + 20,    # classes once per image
                  7 * 7 * (5 + 20),      # one box per cell
                  7 * 7 * (2 * 4 + 20),  # no confidence
                  7 * 7 * 2 * (5 + 20),  # classes per box (YOLOv2)
                  8 * 8 * 20,            # the course's grid
                  1469, 1475.0):
        assert not yolo_checks.check_yolo_outputs(wrong), wrong


# --- write the kernel: IoU -------------------------------------------------------------------------------------

def iou_no_clamp(a, b):
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def iou_union_without_subtraction(a, b):
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None])


def iou_plus_one_pixel(a, b):   # the old PASCAL convention: a box covers x1 - x0 + 1 pixels
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt + 1).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


@pytest.mark.parametrize("kernel, first_bad", [
    (iou_no_clamp, "5 x 7 random boxes"),
    (iou_union_without_subtraction, "5 x 7 random boxes"),
    (iou_plus_one_pixel, "5 x 7 random boxes"),
    (lambda a, b: box_iou(b, a).T.contiguous().float(), "5 x 7 random boxes"),
    (lambda a, b: box_iou(b, a), "5 x 7 random boxes"),
])
def test_iou_cases_reject_wrong_kernels(kernel, first_bad):
    ok, out = verdict_and_output(check_kernel, kernel, box_iou, checks.iou_cases(), name="k", reference_name="box_iou")
    assert not ok and f"({first_bad}" in out, out


def test_iou_cases_pass_course_lib_and_torchvision():
    assert verdict_and_output(check_kernel, torchvision.ops.box_iou, box_iou, checks.iou_cases(), name="k",
                              reference_name="box_iou")[0]
    descriptions = [d for d, _ in checks.iou_cases()]
    assert any("zero-area" in d for d in descriptions) and any("disjoint" in d for d in descriptions)
    assert any("identical" in d for d in descriptions)
    for _, (a, b) in checks.iou_cases():   # no pair of zero-area boxes: no 0 / 0 = NaN to compare
        assert not box_iou(a, b).isnan().any() and a.dtype == b.dtype == torch.float64


# --- write the kernel: NMS -------------------------------------------------------------------------------------

def greedy(boxes, scores, thr, *, stable=True, suppress=lambda iou, thr: iou > thr, chain=False):
    order = scores.argsort(descending=True, stable=stable)
    iou, keep, removed = box_iou(boxes, boxes), [], set()
    for pos, i in enumerate(order.tolist()):
        if i in removed:
            continue
        keep.append(i)
        for j in order[pos + 1:].tolist():
            if suppress(iou[i, j], thr):
                removed.add(j)
        if chain:   # wrong: a suppressed box suppresses too
            for j in order[pos + 1:].tolist():
                for r in list(removed):
                    if suppress(iou[r, j], thr):
                        removed.add(j)
    return torch.tensor(keep, dtype=torch.int64)


def nms_ties_reversed(boxes, scores, thr):
    flipped = torch.arange(len(boxes) - 1, -1, -1)
    return flipped[greedy(boxes.flip(0), scores.flip(0), thr)] if len(boxes) else greedy(boxes, scores, thr)


def nms_no_empty_case(boxes, scores, thr):
    keep = greedy(boxes, scores, thr).tolist()
    return torch.stack([torch.tensor(k) for k in keep])   # raises on an empty list


@pytest.mark.parametrize("kernel, first_bad", [
    (lambda b, s, t: greedy(b, s, t, suppress=lambda iou, thr: iou >= thr), "an IoU exactly at the threshold"),
    (lambda b, s, t: greedy(b, s, t, chain=True), "3 objects"),
    (nms_ties_reversed, "ties in score"),
    (nms_no_empty_case, "an empty set"),
    (lambda b, s, t: greedy(b, s, t).sort().values, "3 objects"),               # sorted by index
    (lambda b, s, t: greedy(b, s, t)[:1] if len(b) else greedy(b, s, t), "3 objects"),   # the best box only
])
def test_nms_cases_reject_wrong_kernels(kernel, first_bad):
    ok, out = verdict_and_output(check_kernel, kernel, nms, checks.nms_cases(), name="k", reference_name="nms")
    assert not ok and first_bad in out, out


def test_nms_cases_pass_course_lib_torchvision_and_a_plain_greedy_loop():
    for kernel in (torchvision.ops.nms, greedy):
        assert verdict_and_output(check_kernel, kernel, nms, checks.nms_cases(), name="k", reference_name="nms")[0]
    descriptions = " ".join(d for d, _ in checks.nms_cases())
    assert "ties in score" in descriptions and "empty set" in descriptions and "all boxes overlapping" in descriptions


def test_the_chain_case_needs_greedy_order():
    """Only the chain case (and maybe a random one) tells greedy NMS from 'drop whatever overlaps a better box'."""
    (_, (boxes, scores, thr)), = [c for c in checks.nms_cases() if c[0].startswith("a chain")]
    assert nms(boxes, scores, thr).tolist() == [0, 2]
    assert greedy(boxes, scores, thr, chain=True).tolist() == [0]


# --- write the kernel: the YOLO v1 loss ------------------------------------------------------------------------

def make_loss(*, sqrt=True, noobj_per_cell=False, lambda_noobj=0.5, per_image=True, class_everywhere=False,
              fixed_B=None):
    """The loss of Eq. 3 with one chosen mistake."""
    def loss(pred, target, lambda_coord=5.0):
        C = target.shape[-1] - 5
        N, S, _, D = pred.shape
        B = fixed_B or (D - C) // 5
        boxes, probs = pred[..., :B * 5].reshape(N, S, S, B, 5), pred[..., D - C:]
        has_obj, gt = target[..., 0], target[..., None, 1:5]
        iou, best = responsible_predictor(pred, target)
        obj = F.one_hot(best, B).to(pred.dtype) * has_obj[..., None]
        noobj = (1 - has_obj[..., None]).expand_as(obj) if noobj_per_cell else 1 - obj
        root = (lambda x: x.sqrt()) if sqrt else (lambda x: x)
        n = N if per_image else 1
        conf = boxes[..., 4]
        cls_mask = torch.ones_like(has_obj) if class_everywhere else has_obj
        return {"coord_xy": lambda_coord * (obj * (boxes[..., :2] - gt[..., :2]).square().sum(-1)).sum() / n,
                "coord_wh": lambda_coord * (obj * (root(boxes[..., 2:4]) - root(gt[..., 2:4])).square().sum(-1)).sum()
                / n,
                "obj": (obj * (conf - iou).square()).sum() / n,
                "noobj": lambda_noobj * (noobj * conf.square()).sum() / n,
                "class": (cls_mask * (probs - target[..., 5:]).square().sum(-1)).sum() / n}
    return loss


def test_yolo_loss_cases_pass_the_reference_and_a_loss_written_out():
    assert verdict_and_output(yolo_checks.check_yolo_loss, yolo_loss)[0]
    assert verdict_and_output(yolo_checks.check_yolo_loss, make_loss())[0]
    descriptions = [d for d, _ in yolo_checks.yolo_loss_cases()]
    assert "no object in any cell" in descriptions and "an object in every cell" in descriptions
    (_, (_, empty)), = [c for c in yolo_checks.yolo_loss_cases() if c[0] == "no object in any cell"]
    (_, (_, full)), = [c for c in yolo_checks.yolo_loss_cases() if c[0] == "an object in every cell"]
    assert empty[..., 0].sum() == 0 and bool((full[..., 0] == 1).all())


@pytest.mark.parametrize("mistake, terms, first_bad", [
    (dict(sqrt=False), "coord_wh", "2 random scenes, S=8"),
    (dict(lambda_noobj=1.0), "noobj", "2 random scenes, S=8"),
    (dict(per_image=False), "coord_xy, coord_wh, obj, noobj, class", "2 random scenes, S=8"),
    (dict(class_everywhere=True), "class", "2 random scenes, S=8"),
    (dict(noobj_per_cell=True), "noobj", "2 random scenes, S=8"),
    (dict(fixed_B=2), None, "B=3"),
])
def test_yolo_loss_cases_reject_wrong_losses_and_name_the_terms(mistake, terms, first_bad):
    ok, out = verdict_and_output(yolo_checks.check_yolo_loss, make_loss(**mistake))
    assert not ok and first_bad in out, out
    if terms is not None:
        assert f"The terms that disagree: {terms}." in out, out


def test_the_edge_cases_catch_what_random_scenes_miss():
    """A noobj mask per cell instead of per predictor differs only where cells hold objects: the full grid
    shows it most, where every cell holds one; the empty grid checks noobj alone."""
    cases = dict(yolo_checks.yolo_loss_cases())
    wrong = make_loss(noobj_per_cell=True)
    pred, full = cases["an object in every cell"]
    assert float(wrong(pred, full)["noobj"]) == 0.0 < float(yolo_loss(pred, full)["noobj"])
    pred, empty = cases["no object in any cell"]
    assert float(yolo_loss(pred, empty)["total"]) == pytest.approx(float(yolo_loss(pred, empty)["noobj"]))


# --- the notebooks' solutions pass their checks ----------------------------------------------------------------

def exercise_cells(name: str, marker: str) -> list[str]:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return [c.source for c in nb.cells
            if c.cell_type == "code" and marker in c.source and "### BEGIN SOLUTION" in c.source]


@pytest.mark.parametrize("name, marker", [("03_rcnn.ipynb", "def my_box_iou"), ("03_rcnn.ipynb", "def my_nms"),
                                          ("04_yolo.ipynb", "def my_yolo_loss")])
def test_the_notebook_solution_passes_its_check(name, marker):
    cells = exercise_cells(name, marker)
    assert len(cells) == 1, f"{name}: expected one cell defining {marker!r}"
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(cells[0], scope)
    assert out.getvalue().startswith("Correct!"), out.getvalue()
