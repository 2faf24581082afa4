"""Property-based fuzzing of every public kernel of chapters 00-04 and 07-08 (hypothesis).

For random shapes (empty ones included), dtypes and memory layouts each kernel must either give its oracle's
answer (torchvision.ops, torchvision's BoxCoder, torchmetrics, scipy, captum, torch.distributions, numpy, or a
plain loop written out here) or raise a ValueError whose message says what it expected, with a shape. Any other
exception -- an IndexError or a RuntimeError from deep inside, a TypeError -- or a silently different answer fails.

Adding a kernel takes a few lines: draw inputs with the shared strategies (``boxes``, ``images``,
``float_dtypes``, ``layouts``, ``wrong_shape``), then call
``assert_oracle_or_value_error(kernel, oracle, *args)`` (``valid=True`` when the input must be accepted).
Every test is ``@FUZZ`` (or ``@fuzz(n)``): derandomized, so CI runs the same examples every time.

Each example draws a valid input, compared with the oracle, and an invalid variant of it (another dtype, a
wrong shape, a value out of range), which must raise the ValueError: were most draws invalid, the oracle would
rarely be compared. ``@counted()`` (tests/fuzz_stats.py) fails a test unless at least 80 % of its examples
reached the oracle comparison and some tested the ValueError.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch
import torch.nn.functional as F
import torchvision.ops as tv_ops
from fuzz_stats import counted, record
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tolerance import assert_argmax_consistent, assert_close_scaled, eps, scaled_atol
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence
from torchvision.models.detection._utils import BoxCoder

from course_lib import metrics as image_metrics
from course_lib.cnn.train import accuracy, augment, check_images, predict
from course_lib.detection import (
    average_precision_101,
    batched_nms,
    box_area,
    box_iou,
    decode,
    encode,
    mean_average_precision,
    nms,
    precision_recall,
    selective_search,
)
from course_lib.yolo import model as yolo
from course_lib.detection.metrics import match_detections
from course_lib.inside import (
    box_from_saliency,
    connected_components,
    deconvnet,
    occlusion,
    occlusion_maps,
    pointing_game,
    receptive_field,
    saliency,
    top_activations,
)
from course_lib.inside.deconvnet import layer_output
from course_lib.inside.localization import box_loss
from course_lib.inside.occlusion import occluder_corners
from course_lib.vae import vae as vae_lib
from course_lib.vae.hierarchical import HierarchicalVAE
from course_lib import vq as vq_lib

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU",
                                        "ignore:Input Tensor 0 did not already require gradients")


def fuzz(max_examples: int = 25):
    """Reproducible hypothesis settings: the same examples on every run, no example database, no deadline."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


FUZZ = fuzz()

# ---------------------------------------------------------------------------------------------- helpers

FLOAT_DTYPES = [torch.float32, torch.float64]
ODD_DTYPES = [torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]
HALF_DTYPES = [torch.float16, torch.bfloat16]
NOT_FLOAT = [torch.int64, torch.uint8, torch.bool]
float_dtypes = st.sampled_from(FLOAT_DTYPES)
any_dtypes = st.sampled_from(FLOAT_DTYPES + ODD_DTYPES)
ANY_FLOAT = st.sampled_from(FLOAT_DTYPES + HALF_DTYPES)                # valid inputs; NOT_FLOAT for the ValueError
layouts = st.sampled_from(["contiguous", "transposed", "strided", "channels_last"])

TOLERANCE = {torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2),
             torch.float32: (1.3e-6, 1e-5), torch.float64: (1e-7, 1e-7)}  # (rtol, atol)
SHAPE_ERROR = r"expected\b.*\([^()]*\)"           # "expected" and a shape such as (N, 4) or (2,)


def wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype of a kernel's answer for inputs of ``dtype``: float32 for float16 / bfloat16 (computed in float32,
    as torchvision does), else ``dtype``."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def tolerance(dtype: torch.dtype) -> dict:
    """rtol and atol for inputs of ``dtype`` when the answer comes out in a wider dtype (float16 boxes give
    float32 IoUs, computed from float16 inputs); {} leaves the choice to the answer's dtype."""
    rtol, atol = TOLERANCE.get(dtype, (None, None))
    return {"rtol": rtol, "atol": atol} if dtype in (torch.float16, torch.bfloat16) else {}


def as_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as x in another memory layout: a transposed or strided view, or channels last."""
    if layout == "transposed" and x.ndim >= 2:
        return x.mT.contiguous().mT
    if layout == "strided" and x.ndim >= 1:
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    if layout == "channels_last" and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()


def assert_same(got, expected, rtol: float | None = None, atol: float | None = None) -> None:
    """got equals expected: tensors of the same shape, allclose with a tolerance for got's dtype (NaN = NaN),
    exactly equal when both are integer or bool; lists, tuples and dicts element by element."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (got, expected)
        for key in expected:
            assert_same(got[key], expected[key], rtol, atol)
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), (got, expected)
        for g, e in zip(got, expected):
            assert_same(g, e, rtol, atol)
    elif expected is None:                                             # a check that returns nothing
        assert got is None, got
    elif isinstance(expected, (torch.Tensor, np.ndarray)) or isinstance(got, torch.Tensor):
        got, expected = torch.as_tensor(got), torch.as_tensor(expected)
        assert got.shape == expected.shape, f"shape {tuple(got.shape)} != oracle's {tuple(expected.shape)}"
        if not got.is_floating_point() and not expected.is_floating_point():
            assert torch.equal(got.long(), expected.long()), (got, expected)
            return
        default = TOLERANCE[got.dtype if got.is_floating_point() else torch.float32]
        torch.testing.assert_close(got.double(), expected.double(), equal_nan=True,
                                   rtol=default[0] if rtol is None else rtol, atol=default[1] if atol is None else atol)
    else:
        rtol, atol = (1e-6 if rtol is None else rtol), (1e-9 if atol is None else atol)
        assert (math.isnan(got) and math.isnan(expected)) or math.isclose(got, expected, rel_tol=rtol, abs_tol=atol), \
            (got, expected)


def assert_value_error(fn, *args, match: str = SHAPE_ERROR) -> None:
    """fn(*args) raises a ValueError whose message matches ``match`` (by default: "expected" and a shape)."""
    with pytest.raises(ValueError) as info:
        fn(*args)
    message = str(info.value)
    assert re.search(match, message) and not re.match(r"(not enough|too many) values to unpack", message), message
    record("value_error")


def float_tensors(x) -> list[torch.Tensor]:
    """The floating-point tensors in x (a tensor, or lists, tuples and dicts of them)."""
    if isinstance(x, dict):
        return float_tensors(list(x.values()))
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in float_tensors(item)]
    return [x] if isinstance(x, torch.Tensor) and x.is_floating_point() else []


def assert_oracle_or_value_error(fn, oracle, *args, valid: bool = False, match: str = SHAPE_ERROR,
                                 rtol: float | None = None, atol: float | None = None,
                                 dtype: torch.dtype | None = None, compare=None):
    """fn(*args) returns what oracle(*args) returns (``assert_same``), or raises a ValueError matching ``match``
    -- not allowed when ``valid``. Any other exception propagates and fails the test. Returns fn's result.

    ``dtype``: the dtype the answer's float tensors must have (the inputs', as documented), whose tolerance is
    then the default (not the tolerance of whatever dtype came back). ``compare(got, expected)`` replaces
    ``assert_same`` (a tolerance of the size of the quantities computed, an arg-max up to rounding).
    Records the outcome for ``@counted`` (tests/fuzz_stats.py)."""
    try:
        got = fn(*args)
    except ValueError as error:
        assert not valid, f"valid input rejected: {error}"
        assert re.search(match, str(error)), f"ValueError does not say what it expected: {error}"
        record("rejected")
        return None
    record("oracle")
    if dtype is not None:
        dtypes = {t.dtype for t in float_tensors(got)}
        assert dtypes <= {dtype}, f"the answer is in {dtypes}, expected {dtype}"
        rtol, atol = (TOLERANCE[dtype][0] if rtol is None else rtol), (TOLERANCE[dtype][1] if atol is None else atol)
    expected = oracle(*args)
    if compare is not None:
        compare(got, expected)
    else:
        assert_same(got, expected, rtol, atol)
    return got


@st.composite
def wrong_shape(draw, template: tuple[int | None, ...]) -> tuple[int, ...]:
    """A shape that does not fit template (None: any size): one dimension fewer or more, or a fixed
    dimension of another size."""
    shape = [draw(st.integers(0, 4)) if d is None else d for d in template]
    fixed = [i for i, d in enumerate(template) if d is not None]
    kind = draw(st.sampled_from(["fewer", "more"] + (["other size"] if fixed else [])))
    if kind == "fewer" and shape:
        del shape[draw(st.integers(0, len(shape) - 1))]
    elif kind == "other size":
        i = draw(st.sampled_from(fixed))
        shape[i] = draw(st.integers(0, 7).filter(lambda v: v != template[i]))
    else:
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 3)))
    return tuple(shape)


COORDS = st.one_of(st.integers(0, 12).map(float), st.floats(0, 64, allow_subnormal=False, width=32))
SMALL_GRID = st.one_of(st.integers(0, 3).map(float), COORDS)        # IoUs such as 1/3, 1/2, 2/3 are common


@st.composite
def boxes(draw, n: int | None = None, max_n: int = 8, scales=(1.0, 1e-6), coords=COORDS) -> torch.Tensor:
    """(n, 4) float64 xyxy boxes with x0 <= x1, y0 <= y1: on a small integer grid (ties, touching and
    zero-area boxes) or anywhere in [0, 64), optionally scaled down to a millionth."""
    n = draw(st.integers(0, max_n)) if n is None else n
    a = draw(arrays(np.float64, (n, 4), elements=coords)) * draw(st.sampled_from(scales))
    return torch.from_numpy(np.concatenate([np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])], 1))


def images(shape: tuple[int, ...], levels: int | None = None):
    """Float64 images of ``shape`` in [0, 1]: float32-representable values, or with ``levels`` the values
    k / levels only (ties, exact quantiles)."""
    if levels is not None:
        return arrays(np.int64, shape, elements=st.integers(0, levels)).map(lambda a: torch.from_numpy(a / levels))
    return arrays(np.float32, shape, elements=st.floats(0, 1, width=32)).map(lambda a: torch.from_numpy(a).double())


THRESHOLDS = st.one_of(st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.7, 1.0]), st.floats(0, 1))


# ---------------------------------------------------------------------------------------------- boxes


@counted()
@FUZZ
@given(a=boxes(), b=boxes(), dtype=ANY_FLOAT, layout=layouts, bad=st.sampled_from(NOT_FLOAT))
def test_box_area_and_box_iou(a, b, dtype, layout, bad):
    a, b = as_layout(a.to(dtype), layout), b.to(dtype)
    assert_oracle_or_value_error(box_area, tv_ops.box_area, a, valid=True, dtype=wide(dtype), **tolerance(dtype))
    assert_oracle_or_value_error(box_iou, tv_ops.box_iou, a, b, valid=True, dtype=wide(dtype), **tolerance(dtype))
    assert_value_error(box_area, a.to(bad))                            # integer or bool boxes
    assert_value_error(box_iou, a, b.to(bad))


@FUZZ
@given(data=st.data())
def test_box_kernels_reject_wrong_shapes(data):
    bad = torch.zeros(data.draw(wrong_shape((None, 4))))
    good = torch.zeros(3, 4)
    for call in (lambda: box_area(bad), lambda: box_iou(bad, good), lambda: box_iou(good, bad),
                 lambda: nms(bad, torch.zeros(len(bad) if bad.ndim else 0), 0.5),
                 lambda: encode(bad, good), lambda: decode(good, bad)):
        assert_value_error(call)
    scores = torch.zeros(data.draw(wrong_shape((3,))))
    assert_value_error(nms, good, scores, 0.5)
    assert_value_error(batched_nms, good, torch.zeros(3), scores.long(), 0.5)


def tv_nms(boxes_, scores, threshold):
    """torchvision's nms, in float64 when it has no kernel for the dtypes (float16, mixed)."""
    if boxes_.dtype != scores.dtype or boxes_.dtype not in FLOAT_DTYPES:
        boxes_, scores = boxes_.double(), scores.double()
    return tv_ops.nms(boxes_, scores, threshold)


@counted()
@fuzz(40)
@given(data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), threshold=THRESHOLDS,
       layout=layouts)
def test_nms_and_batched_nms(data, dtype, threshold, layout):
    b = data.draw(boxes(max_n=12, scales=(1.0,), coords=SMALL_GRID))
    n = len(b)
    scores = data.draw(arrays(np.float64, (n,), elements=st.sampled_from([0.1, 0.5, 0.9]) | st.floats(0, 1)))
    scores = torch.from_numpy(scores).to(data.draw(float_dtypes))
    labels = torch.from_numpy(data.draw(arrays(np.int64, (n,), elements=st.integers(0, 2))))
    b = as_layout(b.to(dtype), layout)
    keep = assert_oracle_or_value_error(nms, tv_nms, b, scores, threshold, valid=True)
    assert keep.dtype == torch.int64
    batched = lambda *args: tv_ops.batched_nms(*args) if args[0].dtype == args[1].dtype and dtype != torch.float16 \
        else tv_ops.batched_nms(args[0].double(), args[1].double(), *args[2:])  # noqa: E731
    assert_oracle_or_value_error(batched_nms, batched, b, scores, as_layout(labels, layout), threshold, valid=True)
    assert_value_error(nms, b.long(), scores, threshold)
    assert_value_error(nms, b, scores.long(), threshold)
    assert_value_error(batched_nms, b, scores, labels.float(), threshold)
    assert_value_error(batched_nms, b, scores, labels.bool(), threshold)


@counted()
@FUZZ
@given(proposals=boxes(n=6, scales=(1.0,)), gt=boxes(n=6, scales=(1.0,)), dtype=st.sampled_from(
       FLOAT_DTYPES + [torch.float16]), layout=layouts, n=st.integers(0, 6),
       deltas=arrays(np.float64, (6, 4), elements=st.floats(-8, 8)))
def test_encode_and_decode_match_box_coder(proposals, gt, dtype, layout, n, deltas):
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    proposals, gt = as_layout(proposals[:n].to(dtype), layout), gt[:n].to(dtype)
    deltas = torch.from_numpy(deltas[:n]).to(dtype if dtype in FLOAT_DTYPES else torch.float32)
    with np.errstate(all="ignore"):
        assert_oracle_or_value_error(encode, lambda p, g: coder.encode_single(g, p), proposals, gt, valid=True)
        assert_oracle_or_value_error(decode, lambda p, d: coder.decode_single(d, p), proposals, deltas, valid=True)
    assert_value_error(encode, proposals.long(), gt)                   # integer boxes
    assert_value_error(decode, proposals.long(), deltas)


# -------------------------------------------------------------------------------------------- metrics


def coco_ap(precision: torch.Tensor, recall: torch.Tensor) -> float:
    """COCOeval.accumulate: the precision envelope sampled at the 101 recall thresholds torchmetrics hands it."""
    pr, rc = precision.double().tolist(), recall.double().numpy()
    for i in range(len(pr) - 1, 0, -1):
        pr[i - 1] = max(pr[i - 1], pr[i])
    levels = torch.linspace(0, 1, 101).double().numpy()
    return float(np.mean([pr[i] if i < len(pr) else 0.0 for i in np.searchsorted(rc, levels, side="left")]))


@counted(rejects=False)
@FUZZ
@given(tp=st.lists(st.booleans(), max_size=30), extra_gt=st.integers(0, 5), dtype=st.sampled_from(
       FLOAT_DTYPES + [torch.float16]), layout=layouts)
def test_average_precision_101_matches_cocoeval(tp, extra_gt, dtype, layout):
    tp = torch.tensor(tp, dtype=torch.float64)
    n_gt = max(int(tp.sum()) + extra_gt, 1)
    precision = (tp.cumsum(0) / torch.arange(1, len(tp) + 1)).to(dtype)
    recall = (tp.cumsum(0) / n_gt).to(dtype)
    assert_oracle_or_value_error(average_precision_101, coco_ap, as_layout(precision, layout), recall, valid=True,
                                 rtol=1e-12, atol=1e-12)


@FUZZ
@given(data=st.data())
def test_average_precision_101_rejects_wrong_shapes(data):
    precision = torch.zeros(data.draw(wrong_shape((5,))))
    assert_value_error(average_precision_101, precision, torch.zeros(5))
    assert_value_error(average_precision_101, torch.zeros(5), precision)


@st.composite
def detections(draw, max_images: int = 3, classes: int = 3):
    """preds and targets in torchmetrics' format: 0-3 ground truths and 0-5 detections per image, most
    detections near a ground truth, scores with ties, a float dtype and a memory layout per image."""
    preds, targets = [], []
    for _ in range(draw(st.integers(1, max_images))):
        gt = draw(boxes(max_n=3, scales=(1.0,)))
        k = draw(st.integers(0, 5))
        near = gt[torch.tensor(draw(st.lists(st.integers(0, len(gt) - 1), min_size=k, max_size=k)),
                               dtype=torch.long)] if len(gt) else draw(boxes(n=k, scales=(1.0,)))
        jitter = torch.from_numpy(draw(arrays(np.float64, (k, 4), elements=st.sampled_from([0.0, 0.5, 2.0, -1.0]))))
        moved = near + jitter
        det = torch.cat([moved[:, :2].minimum(moved[:, 2:]), moved[:, :2].maximum(moved[:, 2:])], 1)
        scores = torch.tensor(draw(st.lists(st.sampled_from([0.2, 0.5, 0.9]) | st.floats(0, 1), min_size=k,
                                            max_size=k)), dtype=torch.float64)
        dtype, layout = draw(float_dtypes), draw(layouts)
        labels = st.lists(st.integers(0, classes - 1), min_size=k, max_size=k)
        preds.append({"boxes": as_layout(det.to(dtype), layout), "scores": scores.to(dtype),
                      "labels": torch.tensor(draw(labels), dtype=torch.int64)})
        targets.append({"boxes": as_layout(gt.to(dtype), layout), "labels": torch.tensor(
            draw(st.lists(st.integers(0, classes - 1), min_size=len(gt), max_size=len(gt))), dtype=torch.int64)})
    return preds, targets


def torchmetrics_map(preds, targets, iou_threshold):
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_thresholds=[iou_threshold], box_format="xyxy")
    metric.warn_on_many_detections = False
    as32 = lambda d: {k: v.float().contiguous() if v.is_floating_point() else v for k, v in d.items()}  # noqa: E731
    metric.update([as32(p) for p in preds], [as32(t) for t in targets])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(metric.compute()["map"])


@counted(rejects=False)
@fuzz(15)
@given(pair=detections(), iou_threshold=st.sampled_from([0.3, 0.5, 0.75]))
def test_mean_average_precision_matches_torchmetrics(pair, iou_threshold):
    preds, targets = pair
    assert_oracle_or_value_error(mean_average_precision, torchmetrics_map, preds, targets, iou_threshold,
                                 valid=True, atol=1e-4)


def reference_match(boxes_, scores, gt_boxes, threshold):
    """COCOeval.evaluateImg's greedy matching, as loops: by decreasing score (stable), each detection takes
    the unmatched ground truth of highest IoU >= threshold (equal IoUs: the later one)."""
    iou = tv_ops.box_iou(boxes_.double(), gt_boxes.double()).nan_to_num(0.0).tolist()
    order = sorted(range(len(scores)), key=lambda d: -float(scores[d]))
    matched, is_tp = set(), []
    for d in order:
        best, best_iou = None, min(threshold, 1 - 1e-10)
        for g in range(len(gt_boxes)):
            if g not in matched and iou[d][g] >= best_iou:
                best, best_iou = g, iou[d][g]
        is_tp.append(best is not None)
        matched |= {best} - {None}
    return torch.tensor(is_tp, dtype=torch.bool)


@counted(rejects=False)
@FUZZ
@given(pair=detections(max_images=1), iou_threshold=THRESHOLDS, layout=layouts)
def test_match_detections_and_precision_recall(pair, iou_threshold, layout):
    (pred,), (target,) = pair
    args = (pred["boxes"], as_layout(pred["scores"], layout), target["boxes"], iou_threshold)
    is_tp = assert_oracle_or_value_error(match_detections, reference_match, *args, valid=True)
    precision, recall, n_gt = precision_recall([pred], [target], 0, iou_threshold)
    assert precision.shape == recall.shape and n_gt == int((target["labels"] == 0).sum())
    assert ((0 <= recall) & (recall <= 1) & (0 <= precision) & (precision <= 1)).all()
    assert is_tp.sum() <= min(len(target["boxes"]), len(pred["boxes"]))


@FUZZ
@given(data=st.data())
def test_detection_metrics_reject_malformed_images(data):
    good_pred = {"boxes": torch.zeros(2, 4), "scores": torch.zeros(2), "labels": torch.zeros(2, dtype=torch.int64)}
    good_target = {"boxes": torch.zeros(1, 4), "labels": torch.zeros(1, dtype=torch.int64)}
    key = data.draw(st.sampled_from(["boxes", "scores", "labels"]))
    template = {"boxes": (2, 4), "scores": (2,), "labels": (2,)}[key]
    bad = dict(good_pred, **{key: torch.zeros(data.draw(wrong_shape(template)), dtype=good_pred[key].dtype)})
    for fn in (mean_average_precision, lambda p, t: precision_recall(p, t, 0)):
        assert_value_error(fn, [bad], [good_target])
        assert_value_error(fn, [good_pred], [dict(good_target, labels=torch.zeros(1))])   # float labels
        assert_value_error(fn, [good_pred, good_pred], [good_target], match=r"expected .*same length")
    assert_value_error(match_detections, good_pred["boxes"], torch.zeros(data.draw(wrong_shape((2,)))),
                       good_target["boxes"], 0.5)
    assert_value_error(match_detections, good_pred["boxes"], good_pred["scores"],
                       torch.zeros(data.draw(wrong_shape((None, 4)))), 0.5)


def test_detection_metrics_of_no_images():
    assert mean_average_precision([], []) == -1.0
    precision, recall, n_gt = precision_recall([], [], 0)
    assert precision.shape == recall.shape == (0,) and n_gt == 0


# ----------------------------------------------------------------------------------------------- yolo


def reference_encode_targets(targets, S, size, num_classes):
    """The grid targets as loops in float64: each box goes to the cell of its centre; in a shared cell the
    larger box (equal areas: the later) wins."""
    out = np.zeros((len(targets), S, S, 5 + num_classes))
    cell = size / S
    for n, t in enumerate(targets):
        kept = {}
        for (x0, y0, x1, y1), label in zip(t["boxes"].double().tolist(), t["labels"].tolist()):
            cx, cy = (x0 + x1) / 2 / cell, (y0 + y1) / 2 / cell
            j, i = min(max(math.floor(cx), 0), S - 1), min(max(math.floor(cy), 0), S - 1)
            area = (x1 - x0) * (y1 - y0)
            if (i, j) not in kept or area >= kept[i, j][0]:
                kept[i, j] = (area, [1, cx - j, cy - i, (x1 - x0) / size, (y1 - y0) / size], label)
        for (i, j), (_, row, label) in kept.items():
            out[n, i, j, :5], out[n, i, j, 5 + label - 1] = row, 1
    return out


@counted(rejects=False)
@FUZZ
@given(data=st.data(), S=st.sampled_from([1, 2, 4, 8]), num_classes=st.integers(1, 4),
       dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16, torch.int64]), layout=layouts)
def test_encode_targets(data, S, num_classes, dtype, layout):
    size = 64
    targets = []
    for _ in range(data.draw(st.integers(0, 3))):
        b = data.draw(boxes(max_n=5, scales=(1.0, 16.0 / 3)))
        labels = torch.from_numpy(data.draw(arrays(np.int64, (len(b),), elements=st.integers(1, num_classes))))
        labels = labels.to(data.draw(st.sampled_from([torch.int64, torch.int32, torch.uint8])))
        targets.append({"boxes": as_layout(b.to(dtype), layout), "labels": labels})
    assert_oracle_or_value_error(yolo.encode_targets, reference_encode_targets, targets, S, size, num_classes,
                                 valid=True)


@FUZZ
@given(data=st.data())
def test_encode_targets_rejects_malformed_targets(data):
    boxes_ = torch.zeros(data.draw(wrong_shape((2, 4))))
    assert_value_error(yolo.encode_targets, [{"boxes": boxes_, "labels": torch.ones(2, dtype=torch.int64)}])
    labels = torch.ones(data.draw(wrong_shape((2,))), dtype=torch.int64)
    assert_value_error(yolo.encode_targets, [{"boxes": torch.zeros(2, 4), "labels": labels}])
    for labels in (torch.ones(2), torch.ones(2, dtype=torch.bool), torch.tensor([0, 11])):
        assert_value_error(yolo.encode_targets, [{"boxes": torch.zeros(2, 4), "labels": labels}],
                           match=r"expected .*(\(K,\)|1\.\.10)")
    assert_value_error(yolo.encode_targets, {"boxes": torch.zeros(2, 4), "labels": torch.ones(2)})
    assert_value_error(yolo.encode_targets, [], 0)


def reference_cell_to_xyxy(xywh):
    N, S, _, B, _ = xywh.shape
    out = np.zeros((N, S, S, B, 4))
    for n, i, j, b in np.ndindex(N, S, S, B):
        x, y, w, h = xywh[n, i, j, b].double().tolist()
        cx, cy = (j + x) / S, (i + y) / S
        out[n, i, j, b] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    return out


@counted()
@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(0, 2), st.integers(1, 3), st.integers(1, 2)),
       dtype=ANY_FLOAT, layout=layouts, bad=st.sampled_from(NOT_FLOAT))
def test_cell_to_xyxy(data, shape, dtype, layout, bad):
    N, S, B = shape
    xywh = data.draw(images((N, S, S, B, 4))).to(dtype)
    assert_oracle_or_value_error(yolo.cell_to_xyxy, reference_cell_to_xyxy, as_layout(xywh, layout), valid=True)
    assert_value_error(yolo.cell_to_xyxy, xywh.to(bad))
    assert_value_error(yolo.cell_to_xyxy, torch.zeros(data.draw(wrong_shape((None, 3, 3, None, 4)))))


@counted()
@FUZZ
@given(a=boxes(), b=boxes(), dtype=ANY_FLOAT, layout=layouts, split=st.integers(1, 4), bad=st.sampled_from(NOT_FLOAT))
def test_paired_iou_is_the_diagonal_of_box_iou(a, b, dtype, layout, split, bad):
    n = min(len(a), len(b))
    a, b = a[:n].to(dtype), as_layout(b[:n].to(dtype), layout)
    diagonal = lambda a, b: tv_ops.box_iou(a.reshape(-1, 4), b.reshape(-1, 4)).diagonal().reshape(a.shape[:-1])  # noqa
    assert_oracle_or_value_error(yolo.paired_iou, diagonal, a, b, valid=True, dtype=wide(dtype), **tolerance(dtype))
    assert_value_error(yolo.paired_iou, a, b.to(bad))
    if n % split == 0 and dtype in FLOAT_DTYPES:                       # any leading shape, and broadcasting
        grid = (n // split, split, 4)
        assert_oracle_or_value_error(yolo.paired_iou, diagonal, a.reshape(grid), b.reshape(grid), valid=True)
        first = lambda a, b: diagonal(a, b[:1].expand_as(a))            # noqa: E731
        assert_oracle_or_value_error(yolo.paired_iou, first, a, b[:1], valid=True)


@FUZZ
@given(data=st.data())
def test_paired_iou_rejects_wrong_shapes(data):
    shape = data.draw(wrong_shape((None, 4)))
    if len(shape) >= 1 and shape[-1] != 4 or len(shape) == 0:
        assert_value_error(yolo.paired_iou, torch.zeros(shape), torch.zeros(3, 4))
    assert_value_error(yolo.paired_iou, torch.zeros(3, 4), torch.zeros(2, 4))


def _xyxy(i, j, box, S):
    x, y, w, h = box
    cx, cy = (j + x) / S, (i + y) / S
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _iou(a, b):
    iw, ih = max(min(a[2], b[2]) - max(a[0], b[0]), 0), max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def reference_yolo_loss(pred, target, lambda_coord=5.0, lambda_noobj=0.5):
    """Eq. 3 of YOLO v1 as loops over images, cells and predictors, in float64."""
    P, T = pred.double().numpy(), target.double().numpy()
    N, S, _, D = P.shape
    C = T.shape[-1] - 5
    B = (D - C) // 5
    terms = dict.fromkeys(["coord_xy", "coord_wh", "obj", "noobj", "class"], 0.0)
    for n, i, j in np.ndindex(N, S, S):
        cell, t = P[n, i, j], T[n, i, j]
        preds = [cell[5 * b:5 * b + 5] for b in range(B)]
        ious = [_iou(_xyxy(i, j, p[:4], S), _xyxy(i, j, t[1:5], S)) for p in preds]
        responsible = int(np.argmax(ious))
        for b, p in enumerate(preds):
            if t[0] and b == responsible:
                terms["coord_xy"] += lambda_coord * ((p[0] - t[1]) ** 2 + (p[1] - t[2]) ** 2)
                terms["coord_wh"] += lambda_coord * sum((math.sqrt(max(p[k], 1e-12)) - math.sqrt(t[k + 1])) ** 2
                                                        for k in (2, 3))
                terms["obj"] += (p[4] - ious[b]) ** 2
            else:
                terms["noobj"] += lambda_noobj * p[4] ** 2
        if t[0]:
            terms["class"] += ((cell[5 * B:] - t[5:]) ** 2).sum()
    terms = {k: v / N for k, v in terms.items()}
    terms["total"] = sum(terms.values())
    return {k: torch.tensor(v) for k, v in terms.items()}


@st.composite
def yolo_batch(draw, min_n: int = 0):
    """pred (N, S, S, B*5 + C) with values in [0, 1] (some exactly 0, 1/2, 1) and a valid target
    (N, S, S, 5 + C): has_object in {0, 1}, x, y in [0, 1), w, h in [0, 1], one-hot classes."""
    N, S, B, C = draw(st.integers(min_n, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pred = draw(images((N, S, S, B * 5 + C), levels=draw(st.sampled_from([2, 8, 1000]))))
    obj = draw(arrays(np.int64, (N, S, S, 1), elements=st.integers(0, 1)))
    xywh = draw(images((N, S, S, 4), levels=draw(st.sampled_from([4, 1000])))).numpy() * [0.999, 0.999, 1, 1]
    cls = np.eye(C)[draw(arrays(np.int64, (N, S, S), elements=st.integers(0, C - 1)))]
    target = torch.from_numpy(np.concatenate([obj, xywh * obj, cls * obj], -1))
    return pred, target, C


@counted()
@FUZZ
@given(batch=yolo_batch(min_n=1), dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts,
       lambdas=st.tuples(st.sampled_from([5.0, 1.0, 0.0]), st.sampled_from([0.5, 1.0, 0.0])))
def test_yolo_loss_matches_eq3_loops(batch, dtype, layout, lambdas):
    pred, target, _ = batch
    pred, target = as_layout(pred.to(dtype), layout), target.to(dtype)
    assert_oracle_or_value_error(yolo.yolo_loss, reference_yolo_loss, pred, target, *lambdas,
                                 valid=True, rtol=1e-5, atol=1e-5)
    assert_value_error(yolo.yolo_loss, pred[:0], target[:0], *lambdas)  # an empty batch has no mean


@FUZZ
@given(data=st.data())
def test_yolo_loss_and_decode_reject_wrong_shapes(data):
    target = torch.zeros(2, 4, 4, 8)                                   # C = 3
    pred = torch.zeros(data.draw(wrong_shape((2, 4, 4, None))))
    if not (pred.ndim == 4 and pred.shape[3] > 3 and (pred.shape[3] - 3) % 5 == 0):
        assert_value_error(yolo.yolo_loss, pred, target)
        assert_value_error(yolo.decode, pred, 0.05, 0.5, 64, 3)
    assert_value_error(yolo.yolo_loss, torch.zeros(2, 4, 4, 13), torch.zeros(data.draw(wrong_shape((2, 4, 4, 8)))),
                       match=r"expected .*\(N, S, S")
    assert_value_error(yolo.decode, torch.zeros(2, 4, 4, 13), 0.05, 0.5, 64, data.draw(st.sampled_from([4, 5, 13])))


def reference_decode(pred, conf_threshold, iou_threshold, size, num_classes, max_detections):
    """Every (cell, predictor, class) scoring above the threshold, in raster order, pruned per class by
    torchvision's batched_nms, the best max_detections kept. Boxes in float32 arithmetic, like the kernel,
    so that an IoU right at the threshold is the same number on both sides."""
    P = pred.float()
    N, S, _, D = P.shape
    B = (D - num_classes) // 5
    out = []
    for n in range(N):
        found = []
        for i, j, b, c in np.ndindex(S, S, B, num_classes):
            score = P[n, i, j, 5 * b + 4] * P[n, i, j, 5 * B + c]
            if float(score) > conf_threshold:
                x, y, w, h = P[n, i, j, 5 * b:5 * b + 4]
                cx, cy = (torch.tensor(float(j)) + x) / S, (torch.tensor(float(i)) + y) / S
                box = (torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * size).clamp(0, size)
                found.append((box, score, c))
        b_ = torch.stack([f[0] for f in found]) if found else torch.zeros(0, 4)
        s_ = torch.stack([f[1] for f in found]) if found else torch.zeros(0)
        c_ = torch.tensor([f[2] for f in found], dtype=torch.int64)
        keep = tv_ops.batched_nms(b_, s_, c_, iou_threshold)[:max_detections]
        out.append({"boxes": b_[keep], "scores": s_[keep], "labels": c_[keep] + 1})
    return out


@counted(rejects=False)
@FUZZ
@given(batch=yolo_batch(), dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts,
       conf=st.sampled_from([0.0, 0.05, 0.125, 0.5]), iou_threshold=THRESHOLDS, max_det=st.integers(1, 6))
def test_decode_matches_torchvision_batched_nms(batch, dtype, layout, conf, iou_threshold, max_det):
    pred, _, C = batch
    pred = as_layout(pred.to(dtype), layout)
    assert_oracle_or_value_error(yolo.decode, reference_decode, pred, conf, iou_threshold, 64, C, max_det,
                                 valid=True, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------------------------- inside


@functools.lru_cache(maxsize=None)
def small_cnn(c_in: int = 1, num_classes: int = 3, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """(N, c_in, H, W), H, W >= 2 -> (N, num_classes): conv-ReLU-maxpool, conv-ReLU, average pool, linear."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(c_in, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, num_classes)).to(dtype).eval()


@st.composite
def model_inputs(draw, min_n: int = 0, max_side: int = 9):
    """A small CNN, images x (N, C, H, W) for it, in its dtype and some layout, and a target in 0..2 (an int or
    (N,))."""
    N, C = draw(st.integers(min_n, 3)), draw(st.sampled_from([1, 3]))
    H, W = draw(st.integers(2, max_side)), draw(st.integers(2, max_side))
    dtype = draw(float_dtypes)
    x = draw(images((N, C, H, W))).to(dtype)
    target = draw(st.integers(0, 2) | arrays(np.int64, (N,), elements=st.integers(0, 2)).map(torch.from_numpy))
    return small_cnn(C, 3, dtype), as_layout(x, draw(layouts)), target


def model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


@st.composite
def wrong_dtype(draw, x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """x in another dtype than the model's (a float batch into a float32 model fails deep inside otherwise)."""
    return x.to(draw(st.sampled_from([d for d in FLOAT_DTYPES + ODD_DTYPES if d != model_dtype(model)])))


@st.composite
def wrong_target(draw, N: int):
    """A target for N images that is not one: a class out of 0..2 (an int, or one entry of (N,)), or a tensor of
    another length."""
    if N and draw(st.booleans()):
        bad = draw(st.sampled_from([-1, 3]))
        if draw(st.booleans()):
            return bad
        target = torch.from_numpy(draw(arrays(np.int64, (N,), elements=st.integers(0, 2))))
        target[draw(st.integers(0, N - 1))] = bad
        return target
    return torch.zeros(N + draw(st.integers(1, 2)), dtype=torch.int64)


def captum_or_empty(attribute, x, shape):
    """captum's answer, or the empty answer of ``shape`` for an empty batch (which captum does not take)."""
    return torch.zeros(shape, dtype=x.dtype) if len(x) == 0 else attribute()


TARGET_ERROR = r"expected .*(\(N, C, H, W\)|\(\d+,\))"
WINDOW_ERROR = r"expected 1 <= window"


@st.composite
def occluder(draw, H: int, W: int, wrong: bool = False):
    """(window, stride) for an H x W image: 1 <= window <= min(H, W), 1 <= stride <= window -- or (``wrong``) a
    window larger than a side, or a stride larger than a window that is smaller than both sides."""
    side = min(H, W)
    if not wrong:
        window = draw(st.integers(1, side))
        return window, draw(st.integers(1, window))
    if draw(st.booleans()):
        return draw(st.integers(side + 1, side + 3)), draw(st.integers(1, 3))
    window = draw(st.integers(1, side - 1))                            # side >= 2
    return window, draw(st.integers(window + 1, window + 3))


@st.composite
def wrong_occlusion_args(draw, model, x, target, window, stride):
    """(x, target, window, stride) with one of them invalid."""
    kind = draw(st.sampled_from(["dtype", "target", "window"]))
    if kind == "dtype":
        return draw(wrong_dtype(x, model)), target, window, stride
    if kind == "target":
        return x, draw(wrong_target(len(x))), window, stride
    return (x, target, *draw(occluder(*x.shape[2:], wrong=True)))


def occluded_copies_logits(model: nn.Module, x: torch.Tensor, window: int, stride: int,
                           baseline: float) -> torch.Tensor:
    """The logits of x and of each occluded copy of it (one per occluder position): the quantities an occlusion
    map is computed from, whose size sets the rounding tolerance."""
    N, C, H, W = x.shape
    copies = [x]
    for y0 in occluder_corners(H, window, stride):
        for x0 in occluder_corners(W, window, stride):
            occluded = x.clone()
            occluded[:, :, y0:y0 + window, x0:x0 + window] = baseline
            copies.append(occluded)
    with torch.no_grad():
        return model(torch.cat(copies))


@counted()
@fuzz(20)
@given(inputs=model_inputs(), data=st.data())
def test_saliency_matches_captum(inputs, data):
    model, x, target = inputs
    oracle = lambda m, x, t: captum_or_empty(                          # noqa: E731
        lambda: captum_attr.Saliency(m).attribute(x, target=t, abs=True).amax(1), x, (0, *x.shape[2:]))
    assert_oracle_or_value_error(saliency, oracle, model, x, target, valid=True, dtype=model_dtype(model),
                                 atol=min(1e-6, TOLERANCE[model_dtype(model)][1]))
    wrong = (data.draw(wrong_dtype(x, model)), target) if data.draw(st.booleans()) else \
        (x, data.draw(wrong_target(len(x))))                           # x in another dtype, or a wrong target
    assert_value_error(saliency, model, *wrong, match=TARGET_ERROR)


@counted()
@fuzz(20)
@given(inputs=model_inputs(), data=st.data(), baseline=st.sampled_from([0.0, 0.5, -1.0]))
def test_occlusion_matches_captum(inputs, data, baseline):
    model, x, target = inputs
    N, C, H, W = x.shape
    window, stride = data.draw(occluder(H, W))
    oracle = lambda m, x, t, w, s, b: captum_or_empty(lambda: captum_attr.Occlusion(m).attribute(  # noqa: E731
        x, target=t, sliding_window_shapes=(C, w, w), strides=(C, s, s), baselines=b), x, x.shape)

    def compare(got, expected):
        """A difference of logits computed in other batches (ours a row of positions at a time, captum one copy at
        a time): rounding of the logits' size, in the lower precision of the two: captum sums and divides in
        float32 whatever the model, so a float64 model's comparison is a float32 one; half an ulp of float32 of
        captum's answer on top."""
        assert got.shape == expected.shape, (got.shape, expected.shape)
        if N:
            lower = min(model_dtype(model), expected.dtype, key=lambda d: torch.finfo(d).bits)
            allowed = scaled_atol(occluded_copies_logits(model, x, window, stride, baseline), lower) \
                + expected.double().abs() * eps(expected.dtype) / 2
            error = (got.double() - expected.double()).abs()
            worst = (error / allowed).argmax()
            assert (error <= allowed).all(), \
                f"error {float(error.flatten()[worst]):.3g} > tolerance {float(allowed.flatten()[worst]):.3g}"

    assert_oracle_or_value_error(occlusion, oracle, model, x, target, window, stride, baseline, valid=True,
                                 dtype=model_dtype(model), compare=compare)
    assert_value_error(occlusion, model, *data.draw(wrong_occlusion_args(model, x, target, window, stride)), baseline,
                       match=TARGET_ERROR + "|" + WINDOW_ERROR)


def reference_occlusion_maps(model, x, target, window, stride, baseline):
    """Zeiler & Fergus's maps, one occluded copy at a time: the probabilities of the target (float64), the
    arg-max classes, and the logits (N, h, w, K) they come from."""
    N, C, H, W = x.shape
    rows, cols = occluder_corners(H, window, stride), occluder_corners(W, window, stride)
    target = torch.full((N,), target) if isinstance(target, int) else target
    prob = torch.zeros(N, len(rows), len(cols), dtype=torch.float64)
    best = torch.zeros(N, len(rows), len(cols), dtype=torch.int64)
    logits = torch.zeros(N, len(rows), len(cols), 3, dtype=x.dtype)
    with torch.no_grad():
        for (i, y0), (j, x0) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
            occluded = x.clone()
            occluded[:, :, y0:y0 + window, x0:x0 + window] = baseline
            logits[:, i, j] = model(occluded)
            probs = logits[:, i, j].double().softmax(1)
            prob[:, i, j], best[:, i, j] = probs[torch.arange(N), target], probs.argmax(1)
    return prob, best, logits


@counted()
@fuzz(20)
@given(inputs=model_inputs(), data=st.data())
def test_occlusion_maps_match_one_copy_at_a_time(inputs, data):
    model, x, target = inputs
    window, stride = data.draw(occluder(*x.shape[2:]))

    def compare(got, expected):
        """Probabilities of logits computed in other batches (a row of positions at a time here, one copy at a
        time there): rounding of the logits' size, in the model's dtype; an arg-max may break a near-tie the
        other way."""
        (prob, best), (expected_prob, _, logits) = got, expected
        assert best.dtype == torch.int64 and best.shape == prob.shape == expected_prob.shape
        if len(x):
            scale = occluded_copies_logits(model, x, window, stride, 0.0)
            assert_close_scaled(prob, expected_prob, scale=scale, dtype=model_dtype(model))
            assert_argmax_consistent(best, logits, scale=scale)

    assert_oracle_or_value_error(occlusion_maps, reference_occlusion_maps, model, x, target, window, stride, 0.0,
                                 valid=True, dtype=model_dtype(model), compare=compare)
    assert_value_error(occlusion_maps, model, *data.draw(wrong_occlusion_args(model, x, target, window, stride)), 0.0,
                       match=TARGET_ERROR + "|" + WINDOW_ERROR)


@counted()
@FUZZ
@given(data=st.data(), size=st.integers(1, 20))
def test_occluder_corners_reach_the_far_edge(data, size):
    def reference(size, window, stride):
        corners = [0]
        while corners[-1] + window < size:
            corners.append(corners[-1] + stride)
        return corners
    window = data.draw(st.integers(1, size))
    stride = data.draw(st.integers(1, window))
    assert_oracle_or_value_error(occluder_corners, reference, size, window, stride, valid=True)
    wrong = data.draw(st.sampled_from([(0, 1), (size + 1, 1), (window, 0)] + ([(window, window + 1)] if window < size
                                                                                else [])))
    assert_value_error(occluder_corners, size, *wrong, match=WINDOW_ERROR)


@counted()
@fuzz(20)
@given(inputs=model_inputs(), layer=st.sampled_from([0, 1, 2, 3, 4]), data=st.data())
def test_deconvnet_matches_captum(inputs, layer, data):
    model, x, _ = inputs
    layer = model[layer]
    with torch.no_grad():
        shape = layer_output(model, layer, torch.zeros(1, *x.shape[1:], dtype=model_dtype(model))).shape
    neuron = tuple(data.draw(st.integers(0, s - 1)) for s in shape[1:])
    oracle = lambda m, l, x, u: captum_or_empty(                       # noqa: E731
        lambda: captum_attr.NeuronDeconvolution(m, l).attribute(x, neuron_selector=u), x, x.shape)
    assert_oracle_or_value_error(deconvnet, oracle, model, layer, x, neuron, valid=True, dtype=model_dtype(model),
                                 atol=min(1e-6, TOLERANCE[model_dtype(model)][1]))
    if data.draw(st.booleans()):                                       # one index one past the end
        axis = data.draw(st.integers(0, 2))
        wrong = (x, tuple(shape[1 + axis] if i == axis else v for i, v in enumerate(neuron)))
    else:                                                              # x in another dtype
        wrong = (data.draw(wrong_dtype(x, model)), neuron)
    assert_value_error(deconvnet, model, layer, *wrong, match=r"expected .*\((N, C, H, W|channel, row, col)\)")


def exact_receptive_field(specs, size, unit):
    """Rows (and columns) an output unit depends on, as sets of indices pushed down layer by layer
    ((kernel, stride, padding, dilation) per layer), clipped to each layer's size -> half-open hull."""
    sizes = [size]
    for k, s, p, d in specs:
        sizes.append((sizes[-1] + 2 * p - d * (k - 1) - 1) // s + 1)
    hulls = []
    for index in unit:
        support = {index}
        for (k, s, p, d), below in zip(reversed(specs), reversed(sizes[:-1])):
            support = {o * s - p + m * d for o in support for m in range(k)} & set(range(below))
        hulls.append((min(support), max(support) + 1) if support else None)
    return hulls


@counted()
@FUZZ
@given(data=st.data(), size=st.integers(4, 16))
def test_receptive_field_matches_exact_index_sets(data, size):
    layers, specs, current = [], [], size
    for _ in range(data.draw(st.integers(1, 3))):
        k, s = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
        pool = data.draw(st.booleans()) and k > 1
        d = 1 if pool else data.draw(st.integers(1, 2))
        p = data.draw(st.integers(0, k // 2 if pool else (d * (k - 1)) // 2))
        if (current + 2 * p - d * (k - 1) - 1) // s + 1 < 1:
            break
        layers.append(nn.MaxPool2d(k, s, p) if pool else nn.Conv2d(1, 1, k, s, p, d))
        specs.append((k, s, p, d))
        current = (current + 2 * p - d * (k - 1) - 1) // s + 1
    if not layers:
        return
    model = nn.Sequential(*layers, nn.ReLU())
    unit = (0, data.draw(st.integers(0, current - 1)), data.draw(st.integers(0, current - 1)))
    hulls = exact_receptive_field(specs, size, unit[1:])
    if None in hulls:                                                  # only padding under the unit
        assert_value_error(receptive_field, model, model[-1], (1, 1, size, size), unit, match="no input pixel")
        return record("rejected", "receptive_field")
    (y0, y1), (x0, x1) = hulls
    record("oracle", "receptive_field")
    assert receptive_field(model, model[-1], (1, 1, size, size), unit) == (y0, y1, x0, x1)
    assert_value_error(receptive_field, model, model[-1], (1, 1, size, size), (0, current, 0),
                       match=r"expected .*\(channel, row, col\)")


@counted()
@fuzz(15)
@given(data=st.data(), layer=st.sampled_from([0, 1, 3, 4]), batch_size=st.integers(1, 3))
def test_top_activations_match_brute_force(data, layer, batch_size):
    model, x, _ = data.draw(model_inputs(min_n=1))
    layer = model[layer]
    k = data.draw(st.integers(1, len(x)))

    def summary(top):
        """What the brute force can check whatever the order of ties: the values, and the activation
        found again at each reported image and position."""
        with torch.no_grad():
            out = layer_output(model, layer, x)                        # (N, C, h, w)
        c = torch.arange(out.shape[1])[:, None]
        return top.values, out[top.indices, c, top.positions[..., 0], top.positions[..., 1]], top.boxes.shape

    def brute_force(model, layer, x, k, batch_size):
        with torch.no_grad():
            out = layer_output(model, layer, x)
        best = out.flatten(2).amax(2).T.sort(1, descending=True).values[:, :k]   # (C, k)
        return best, best, torch.Size([out.shape[1], k, 4])

    assert_oracle_or_value_error(lambda *args: summary(top_activations(*args)), brute_force, model, layer, x, k,
                                 batch_size, valid=True, dtype=model_dtype(model))
    wrong = (x, data.draw(st.sampled_from([0, -1, len(x) + 1]))) if data.draw(st.booleans()) else \
        (data.draw(wrong_dtype(x, model)), k)                          # k out of 1..N, or x in another dtype
    assert_value_error(top_activations, model, layer, *wrong, batch_size, match=r"expected .*(\(N, C, H, W\)|k <= N)")


@counted()
@FUZZ
@given(mask=arrays(np.int64, st.tuples(st.integers(0, 12), st.integers(0, 12)), elements=st.integers(0, 2)),
       dtype=st.sampled_from([torch.bool, torch.int64, torch.float32]), layout=layouts)
def test_connected_components_match_scipy(mask, dtype, layout):
    mask = as_layout(torch.from_numpy(mask).to(dtype), layout)
    def scipy_label(m):
        labels, n = scipy.ndimage.label(m.numpy() != 0)               # 4-connectivity, raster order
        return torch.from_numpy(labels).long(), n

    assert_oracle_or_value_error(connected_components, scipy_label, mask, valid=True)
    assert_value_error(connected_components, mask.flatten())


def reference_box_from_saliency(saliency_map, quantile):
    """scipy: the largest 4-connected component (first in raster order on ties) of the pixels >= the quantile."""
    m = saliency_map.double().numpy()
    labels, n = scipy.ndimage.label(m >= np.quantile(m, quantile))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    ys, xs = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


@counted()
@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(1, 10), st.integers(1, 10)), levels=st.sampled_from([3, 1000]),
       quantile=st.one_of(st.sampled_from([0.0, 0.5, 0.8, 0.9, 1.0]), st.floats(0, 1)),
       dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts)
def test_box_from_saliency_matches_scipy(data, shape, levels, quantile, dtype, layout):
    m = as_layout(data.draw(images(shape, levels)).to(dtype), layout)
    assert_oracle_or_value_error(box_from_saliency, reference_box_from_saliency, m, quantile, valid=True)
    wrong = data.draw(st.sampled_from([m.long(), m.bool(), m[:0], m[:, :0], m[None]]))
    assert_value_error(box_from_saliency, wrong, quantile)             # integer or bool, empty, not (H, W)


def test_box_from_saliency_rejects_nan_and_bad_quantiles():
    assert_value_error(box_from_saliency, torch.full((3, 3), float("nan")), match=r"expected .*finite")
    assert_value_error(box_from_saliency, torch.rand(3, 3), 1.5, match="expected 0 <= quantile <= 1")


def reference_pointing_game(maps, boxes_, tolerance):
    out = []
    for m, (x0, y0, x1, y1) in zip(maps.double().numpy(), boxes_.double().tolist()):
        row, col = np.unravel_index(np.argmax(m), m.shape)
        out.append(x0 - tolerance <= col + 0.5 <= x1 + tolerance and y0 - tolerance <= row + 0.5 <= y1 + tolerance)
    return torch.tensor(out, dtype=torch.bool)


@counted()
@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(0, 3), st.integers(1, 6), st.integers(1, 6)),
       tolerance=st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 3), dtype=ANY_FLOAT, layout=layouts,
       bad=st.sampled_from(NOT_FLOAT))
def test_pointing_game(data, shape, tolerance, dtype, layout, bad):
    maps = as_layout(data.draw(images(shape, levels=data.draw(st.sampled_from([2, 1000])))).to(dtype), layout)
    boxes_ = (data.draw(boxes(n=shape[0], scales=(0.5,))) / 8 * 6).to(data.draw(float_dtypes))
    assert_oracle_or_value_error(pointing_game, reference_pointing_game, maps, boxes_, tolerance, valid=True)
    empty = data.draw(st.sampled_from([maps[:, :0], maps[:, :, :0]]))
    for wrong in (maps.to(bad), empty):                                # integer or bool maps, an empty side
        assert_value_error(pointing_game, wrong, boxes_, tolerance)
    assert_value_error(pointing_game, maps, torch.zeros(data.draw(wrong_shape((shape[0], 4)))))


@counted()
@FUZZ
@given(data=st.data(), n=st.integers(0, 6), scale=st.sampled_from([1.0, 1e-6]), dtype=ANY_FLOAT, layout=layouts,
       bad=st.sampled_from(NOT_FLOAT))
def test_paired_iou_on_tiny_boxes_and_box_loss(data, n, scale, dtype, layout, bad):
    a = data.draw(boxes(n=n, scales=(scale,)))
    b = a.clone() if data.draw(st.booleans()) else data.draw(boxes(n=n, scales=(scale,)))
    a, b = as_layout(a.to(dtype), layout), b.to(dtype)
    diagonal = lambda a, b: tv_ops.box_iou(a.double(), b.double()).diagonal()  # noqa: E731
    tol = tolerance(dtype) or {"rtol": 1e-5, "atol": 1e-6}
    assert_oracle_or_value_error(yolo.paired_iou, diagonal, a, b, valid=True, **tol)
    loss = lambda p, b, s: F.l1_loss(p.double() / s, b.double() / s) + (1 - diagonal(p, b).nan_to_num(0.0)).mean()  # noqa: E731
    if n:
        assert_oracle_or_value_error(box_loss, loss, a, b, 64, valid=True, **tol)
    assert_value_error(box_loss, a, torch.zeros(n + 1, 4), 64)
    assert_value_error(yolo.paired_iou, a.to(bad), b)                  # integer or bool boxes


# -------------------------------------------------------------------------------------------- metrics


def reference_frechet(mu_a, cov_a, mu_b, cov_b):
    """Eq. 6 with scipy's matrix square root of C_a C_b."""
    mu_a, cov_a, mu_b, cov_b = (t.double().numpy() for t in (mu_a, cov_a, mu_b, cov_b))
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real if len(cov_a) else np.zeros((0, 0))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


@st.composite
def gaussians(draw, D: int):
    """mu (D,) and a well-conditioned positive definite covariance (D, D)."""
    mu = torch.from_numpy(draw(arrays(np.float64, (D,), elements=st.floats(-3, 3))))
    a = torch.from_numpy(draw(arrays(np.float64, (D, D), elements=st.floats(-2, 2))))
    return mu, a @ a.T + 0.5 * torch.eye(D, dtype=torch.float64)


@counted()
@FUZZ
@given(data=st.data(), D=st.integers(0, 6), dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts)
def test_frechet_distance_matches_scipy(data, D, dtype, layout):
    (mu_a, cov_a), (mu_b, cov_b) = data.draw(gaussians(D)), data.draw(gaussians(D))
    args = [as_layout(t.to(dtype), layout) for t in (mu_a, cov_a, mu_b, cov_b)]
    # scipy's sqrtm loses about sqrt(eps) relative on singular products, hence atol relative to the traces
    atol = 1e-7 * float(1 + cov_a.trace().abs() + cov_b.trace().abs()) if D else 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_oracle_or_value_error(image_metrics.frechet_distance, reference_frechet, *args, valid=True,
                                     rtol=1e-6, atol=atol)
    if D:                                                              # not positive semi-definite: a negative variance
        i, which = data.draw(st.integers(0, D - 1)), data.draw(st.sampled_from([1, 3]))
        indefinite = args[which].clone()
        indefinite[i, i] = -1 - indefinite[i, i].abs()
        assert_value_error(image_metrics.frechet_distance, *args[:which], indefinite, *args[which + 1:],
                           match=r"expected .*\(D, D\).*positive semi-definite")


@FUZZ
@given(data=st.data(), D=st.integers(1, 4))
def test_frechet_distance_rejects_mismatched_shapes(data, D):
    mu, cov = torch.zeros(D), torch.eye(D)
    assert_value_error(image_metrics.frechet_distance, torch.zeros(data.draw(wrong_shape((D,)))), cov, mu, cov)
    assert_value_error(image_metrics.frechet_distance, mu, cov, mu, torch.zeros(data.draw(wrong_shape((D, D)))))
    assert_value_error(image_metrics.frechet_distance, mu, cov, torch.zeros(D + 1), torch.eye(D + 1))


def numpy_gaussian(feats):
    f = feats.double().numpy()
    return torch.from_numpy(f.mean(0)), torch.from_numpy(np.atleast_2d(np.cov(f, rowvar=False)).reshape(f.shape[1],
                                                                                                         f.shape[1]))


@counted()
@FUZZ
@given(feats=arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(0, 4)), elements=st.floats(-4, 4)),
       dtype=st.sampled_from(FLOAT_DTYPES + HALF_DTYPES + [torch.int64, torch.uint8]), layout=layouts,
       few=st.integers(0, 1))
def test_gaussian_matches_numpy_cov(feats, dtype, layout, few):
    feats = as_layout(torch.from_numpy(feats).to(dtype), layout)
    assert_oracle_or_value_error(image_metrics.gaussian, numpy_gaussian, feats, valid=True, rtol=1e-6, atol=1e-6)
    assert_value_error(image_metrics.gaussian, feats[:few], match=r"expected .*\(N, D\) with N >= 2")
    assert_value_error(image_metrics.gaussian, feats.flatten())
    assert_value_error(image_metrics.gaussian, feats.tolist(), match=r"expected .*\(N, D\)")


# ------------------------------------------------------------------------------------------------ cnn


@counted()
@FUZZ
@given(data=st.data(), B=st.integers(0, 3), size=st.sampled_from([28, 28, 28, 1, 5]), dtype=ANY_FLOAT, layout=layouts,
       wrong=st.sampled_from(["shape", "shape", "dtype", "not a tensor"]))
def test_check_images(data, B, size, dtype, layout, wrong):
    """Any float batch (B, 1, size, size), B = 0 included, in any layout is accepted: check_images returns None and
    leaves it alone; another shape, an integer or bool batch, or no tensor raises the ValueError."""
    x = as_layout(data.draw(images((B, 1, size, size), levels=data.draw(st.sampled_from([1, 255])))).to(dtype), layout)
    before = x.clone()
    args = (x,) if size == 28 else (x, size)                           # the default size, 28
    assert_oracle_or_value_error(check_images, lambda *args: None, *args, valid=True)
    assert torch.equal(x, before) and x.dtype == dtype
    bad = {"shape": lambda: torch.zeros(data.draw(wrong_shape((None, 1, size, size))), dtype=dtype),
           "dtype": lambda: x.to(data.draw(st.sampled_from(NOT_FLOAT))), "not a tensor": lambda: x.tolist()}[wrong]()
    assert_value_error(check_images, bad, *args[1:], match=rf"expected .*(\(B, 1, {size}, {size}\)|float)")


def replay_augment(x, seed, shift):
    """Flip with probability 1/2, then shift by (dy - s, dx - s), replaying the generator's draws."""
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = x.shape
    flip = torch.rand(B, generator=g) < 0.5
    dy, dx = torch.randint(0, 2 * shift + 1, (2, B), generator=g)
    out = torch.zeros_like(x)
    for i in range(B):
        padded = F.pad((x[i].flip(-1) if flip[i] else x[i]).double(), (shift,) * 4)
        out[i] = padded[:, dy[i]:dy[i] + H, dx[i]:dx[i] + W].to(x.dtype)
    return out


@counted()
@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(0, 4), st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)),
       shift=st.integers(0, 3), seed=st.integers(0, 3), dtype=st.sampled_from(FLOAT_DTYPES + ODD_DTYPES[:-1]),
       layout=layouts, bad_shift=st.sampled_from([-1, -3, 1.0]))
def test_augment_is_a_seeded_flip_and_shift(data, shape, shift, seed, dtype, layout, bad_shift):
    x = as_layout(data.draw(images(shape, levels=4)).to(dtype), layout)
    aug = lambda x, seed, shift: augment(x, torch.Generator().manual_seed(seed), shift)  # noqa: E731
    assert_oracle_or_value_error(aug, replay_augment, x, seed, shift, valid=True)
    match = r"expected .*(\(B, C, H, W\)|shift)"
    assert_value_error(augment, x, None, bad_shift, match=match)       # a negative or float shift
    assert_value_error(augment, x.flatten(0, 1), match=match)


@counted()
@FUZZ
@given(data=st.data(), n=st.integers(1, 5), batch_size=st.integers(1, 3), K=st.integers(2, 4),
       dtype=ANY_FLOAT, layout=layouts, bad=st.sampled_from(NOT_FLOAT))
def test_predict_and_accuracy(data, n, batch_size, K, dtype, layout, bad):
    torch.manual_seed(K)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8, K)).eval()
    x = as_layout(data.draw(images((n, 1, 8, 8), levels=8)).to(dtype), layout)
    labels = torch.from_numpy(data.draw(arrays(np.int64, (n,), elements=st.integers(0, K - 1))))
    logits = lambda m, x, bs: m(x.float()).detach()                    # noqa: E731
    assert_oracle_or_value_error(predict, logits, model, x, batch_size, valid=True)
    assert_oracle_or_value_error(predict, logits, model, x[:0], batch_size, valid=True)   # no images: (0, K)
    hits = lambda m, x, y, bs: (m(x.float()).argmax(1) == y).double().mean().item()  # noqa: E731
    assert_oracle_or_value_error(accuracy, hits, model, x, labels, batch_size, valid=True)
    for call in (lambda: predict(model, x.to(bad), batch_size), lambda: accuracy(model, x.to(bad), labels),
                 lambda: accuracy(model, x[:0], labels[:0])):          # integer or bool images; no images
        assert_value_error(call, match=SHAPE_ERROR + "|expected float")
    assert_value_error(accuracy, model, x, torch.zeros(data.draw(wrong_shape((n,))), dtype=torch.int64))


# ------------------------------------------------------------------------------------------ proposals


@counted(rejects=False)
@fuzz(10)
@given(data=st.data(), shape=st.tuples(st.sampled_from([1, 3]), st.integers(1, 10), st.integers(1, 10)),
       dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts)
def test_selective_search_is_the_same_for_any_float_dtype_and_layout(data, shape, dtype, layout):
    """No oracle implements selective search; its answer on the contiguous float32 image is the reference
    for other dtypes and layouts holding the same values, and it must contain the whole image."""
    image = data.draw(images(shape, levels=data.draw(st.sampled_from([4, 1000]))))
    if dtype == torch.float16:
        image = image.half().double()                                 # values a float16 can hold
    reference = selective_search(image.float(), scale=(50.0,))
    assert (reference == torch.tensor([0.0, 0.0, shape[2], shape[1]])).all(1).any()
    assert_oracle_or_value_error(lambda im: selective_search(im, scale=(50.0,)), lambda im: reference,
                                 as_layout(image.to(dtype), layout), valid=True)


@FUZZ
@given(data=st.data())
def test_selective_search_rejects_malformed_images(data):
    bad = torch.rand(data.draw(wrong_shape((1, None, None))))
    if not (bad.ndim == 3 and bad.shape[0] in (1, 3) and bad.shape[1] > 0 and bad.shape[2] > 0):
        assert_value_error(selective_search, bad)
    assert_value_error(selective_search, torch.rand(1, data.draw(st.integers(0, 3)), 0))
    assert_value_error(selective_search, torch.full((1, 4, 4), float("nan")))
    assert_value_error(selective_search, torch.zeros(1, 4, 4, dtype=data.draw(st.sampled_from(ODD_DTYPES[2:]))))


# ------------------------------------------------------------------------------------ pinned examples
# Inputs on which a kernel once disagreed with its oracle, at edges the random draws reach only rarely.

_half_boxes = torch.tensor([[0, 0, 300, 300], [0, 0, 150, 300], [0, 0, 0, 0]], dtype=torch.float16)
_one_third = (torch.tensor([[0, 0, 2, 1.], [1, 0, 3, 1]]), torch.tensor([1.0, 0.5]))   # IoU exactly 1/3
_thirds = torch.tensor([[1, 2, 0, 0, 1, 0, 2, 1, 0, 3, 1, 2, 0],
                        [1, 2, 2, 2, 1, 1, 3, 3, 3, 1, 3, 2, 1]]) / 3  # 0.8 quantile: the 21st value, 2/3, exactly
_on_border = [{"boxes": torch.tensor([[7.9999995, 0, 8.0, 1]]), "labels": torch.tensor([1])}]  # centre < 8 px
_at_threshold = torch.tensor([[[[0.5, 0.5, 0.5, 0.5, 1.0, 0.05]]]])   # score float32(0.05) > 0.05


@pytest.mark.parametrize("fn, oracle, args, tol", [
    (nms, tv_ops.nms, (*_one_third, 1 / 3), {}),
    (batched_nms, tv_ops.batched_nms, (*_one_third, torch.zeros(2, dtype=torch.int64), 1 / 3), {}),
    (box_area, tv_ops.box_area, (_half_boxes,), tolerance(torch.float16)),           # 90000 overflows float16
    (box_iou, tv_ops.box_iou, (_half_boxes, _half_boxes), tolerance(torch.float16)),
    (box_iou, tv_ops.box_iou, (torch.zeros(1, 4).half(), torch.tensor([[0, 0, 1e-6, 1e-6]]).half()), {}),
    (yolo.paired_iou, lambda a, b: torch.ones(1), (torch.tensor([[0, 0, 1e-5, 1e-5]]),) * 2, {}),
    (box_from_saliency, reference_box_from_saliency, (_thirds, 0.8), {}),
    (yolo.encode_targets, reference_encode_targets, (_on_border, 8, 64, 1), {}),
    (yolo.decode, reference_decode, (_at_threshold, 0.05, 0.5, 64, 1, 100), {}),
    (image_metrics.gaussian, numpy_gaussian, (torch.tensor([[1.0], [2.0], [4.0]]),), {}),
], ids=["nms-iou-at-threshold", "batched-nms-iou-at-threshold", "box-area-float16-overflow",
        "box-iou-float16-overflow", "box-iou-float16-underflow", "paired-iou-tiny-boxes",
        "box-from-saliency-quantile-on-a-value", "encode-targets-centre-on-a-border", "decode-score-at-threshold",
        "gaussian-one-feature"])
def test_pinned_examples(fn, oracle, args, tol):
    assert_oracle_or_value_error(fn, oracle, *args, valid=True, **tol)


# ---------------------------------------------------------------------------------- vae and vq (07-08)
# Oracles: torch.distributions (KL, Normal and Bernoulli log-probabilities; for the bounds, on the noise the
# model draws), brute-force torch.cdist for the quantizer, numpy for code histograms and for Lloyd's loop.

VAE_IMAGE_ERROR = r"expected .*\(N, 1, 28, 28\)"
RANGE_ERROR = r"expected .*\[0, \d+\)"                       # codes in [0, K)


def values(shape: tuple[int, ...], bound: float = 4.0):
    """Float64 tensors of ``shape`` in [-bound, bound]: small integers (exact sums, ties) or float32 values."""
    elements = st.integers(-int(bound), int(bound)).map(float) | st.floats(-bound, bound, width=32)
    return arrays(np.float64, shape, elements=elements).map(torch.from_numpy)


def upcast(*xs) -> torch.dtype:
    """The dtype of a chapter 07-08 kernel's answer for float inputs xs (None: not given): the promotion of their
    dtypes, float16 / bfloat16 computed in float32."""
    return functools.reduce(torch.promote_types, [wide(x.dtype) for x in xs if isinstance(x, torch.Tensor)])


def tol_of(*xs) -> dict:
    """rtol and atol of the narrowest float dtype among xs; float16 / bfloat16 count as float32 (the kernels of
    chapters 07-08 compute them in float32, as torchvision does)."""
    narrow = any(isinstance(x, torch.Tensor) and x.dtype != torch.float64 for x in xs)
    rtol, atol = TOLERANCE[torch.float32 if narrow else torch.float64]
    return {"rtol": rtol, "atol": atol}


def result_or_value_error(fn, *args, valid: bool = False, match: str = SHAPE_ERROR):
    """fn(*args), or None when it raises a ValueError matching ``match`` -- not allowed when ``valid``; for
    kernels whose answer is checked by properties (a random draw, an argmin with ties) rather than equality."""
    try:
        result = fn(*args)
    except ValueError as error:
        assert not valid, f"valid input rejected: {error}"
        assert re.search(match, str(error)), f"ValueError does not say what it expected: {error}"
        record("rejected")
        return None
    record("oracle")                                                   # the caller checks the result
    return result


@st.composite
def broadcastable(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: leading dimensions dropped or (if none is) added, some set to 1."""
    start = draw(st.integers(0, len(shape)))
    tail = [1 if draw(st.booleans()) else d for d in shape[start:]]
    return tuple((draw(st.lists(st.integers(1, 2), max_size=1)) if start == 0 else []) + tail)


def not_broadcastable(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """``shape`` with its last dimension that is not 1 grown by 2: no broadcast with ``shape`` (None: all 1)."""
    for i in reversed(range(len(shape))):
        if shape[i] != 1:
            return (*shape[:i], shape[i] + 2, *shape[i + 1:])
    return None


def normal_kl(mu, logvar):
    mu, logvar = mu.double(), logvar.double()
    return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)


@counted()
@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(0, 4), st.integers(0, 5)) | st.lists(st.integers(0, 3), min_size=2,
       max_size=3).map(tuple), dtype=ANY_FLOAT, layout=layouts, bad=st.sampled_from(NOT_FLOAT))
def test_gaussian_kl_matches_torch_distributions(data, shape, dtype, layout, bad):
    mu = as_layout(data.draw(values(shape)).to(dtype), layout)
    logvar = data.draw(values(shape)).to(data.draw(st.sampled_from([dtype, dtype] + FLOAT_DTYPES + HALF_DTYPES)))
    assert_oracle_or_value_error(vae_lib.gaussian_kl, normal_kl, mu, logvar, valid=True, dtype=upcast(mu, logvar),
                                 **tol_of(mu, logvar))
    for wrong in ((mu.to(bad), logvar), (mu, logvar.to(bad)), (mu.flatten(), logvar.flatten())):  # not float, 1-D
        assert_value_error(vae_lib.gaussian_kl, *wrong)
    if len(shape) == 2:
        assert_value_error(vae_lib.gaussian_kl, mu, torch.zeros(data.draw(wrong_shape(shape)), dtype=mu.dtype))


def normal_log_prob(z, mu=None, logvar=None):
    mu = torch.zeros(()) if mu is None else mu
    logvar = torch.zeros(()) if logvar is None else logvar
    return Normal(mu.double(), torch.exp(0.5 * logvar.double())).log_prob(z.double()).sum(-1)


@counted()
@FUZZ
@given(data=st.data(), lead=st.lists(st.integers(0, 3), max_size=2).map(tuple), D=st.integers(0, 4),
       dtype=ANY_FLOAT, layout=layouts, given_=st.sampled_from(["none", "mu", "logvar", "both"]),
       bad=st.sampled_from(NOT_FLOAT))
def test_gaussian_log_prob_matches_normal_log_prob(data, lead, D, dtype, layout, given_, bad):
    z = as_layout(data.draw(values((*lead, D))).to(dtype), layout)
    args = [z]
    for name in ("mu", "logvar"):
        drawn = data.draw(values(data.draw(broadcastable(z.shape))))
        drawn = drawn.to(data.draw(st.sampled_from([dtype] + FLOAT_DTYPES)))
        args.append(drawn if given_ in (name, "both") else None)
    assert_oracle_or_value_error(vae_lib.gaussian_log_prob, normal_log_prob, *args, valid=True,
                                 dtype=upcast(*args), **tol_of(*args))
    i = data.draw(st.sampled_from([i for i, a in enumerate(args) if a is not None]))   # one of them not float
    assert_value_error(vae_lib.gaussian_log_prob, *(a.to(bad) if j == i else a for j, a in enumerate(args)))
    if (other := not_broadcastable(z.shape)) is not None:
        assert_value_error(vae_lib.gaussian_log_prob, z, torch.zeros(other, dtype=z.dtype))
        assert_value_error(vae_lib.gaussian_log_prob, z, None, torch.zeros(other, dtype=z.dtype))
    assert_value_error(vae_lib.gaussian_log_prob, torch.tensor(0.5))


def bernoulli_log_prob(logits, x):
    return Bernoulli(logits=logits.double(), validate_args=False).log_prob(x.double()).flatten(-3).sum(-1)


@counted()
@FUZZ
@given(data=st.data(), lead=st.lists(st.integers(0, 3), max_size=2).map(tuple),
       image=st.tuples(st.integers(1, 2), st.integers(0, 3), st.integers(0, 3)), dtype=ANY_FLOAT, layout=layouts,
       binary=st.booleans(), bad=st.sampled_from(NOT_FLOAT))
def test_bernoulli_log_likelihood_matches_bernoulli_log_prob(data, lead, image, dtype, layout, binary, bad):
    logits = as_layout(data.draw(values((*lead, *image))).to(dtype), layout)
    x_shape = data.draw(broadcastable(logits.shape).filter(lambda s: len(s) >= 3))
    x = data.draw(images(x_shape, levels=1 if binary else None)).to(data.draw(st.sampled_from([dtype] + FLOAT_DTYPES)))
    assert_oracle_or_value_error(vae_lib.bernoulli_log_likelihood, bernoulli_log_prob, logits, x, valid=True,
                                 dtype=upcast(logits, x), **tol_of(logits, x))
    wrong = data.draw(st.sampled_from([(logits.to(bad), x), (logits, x.to(bad))]))   # integer or bool images
    assert_value_error(vae_lib.bernoulli_log_likelihood, *wrong)
    if (other := not_broadcastable(logits.shape)) is not None:
        assert_value_error(vae_lib.bernoulli_log_likelihood, logits, torch.zeros(other, dtype=logits.dtype))
    assert_value_error(vae_lib.bernoulli_log_likelihood, torch.zeros(image[1:]), x)


@counted()
@FUZZ
@given(data=st.data(), shape=st.lists(st.integers(0, 3), min_size=2, max_size=3).map(tuple), dtype=ANY_FLOAT,
       layout=layouts, seed=st.integers(0, 2), bad=st.sampled_from(NOT_FLOAT), fewer=st.integers(0, 1))
def test_reparameterize_is_mu_plus_sigma_eps(data, shape, dtype, layout, seed, bad, fewer):
    mu = as_layout(data.draw(values(shape)).to(dtype), layout)
    logvar, eps = (data.draw(values(shape)).to(data.draw(st.sampled_from([dtype] + FLOAT_DTYPES))) for _ in "ab")
    eq10 = lambda mu, logvar, eps: mu.double() + torch.exp(0.5 * logvar.double()) * eps.double()  # noqa: E731
    z = assert_oracle_or_value_error(vae_lib.reparameterize, eq10, mu, logvar, eps, valid=True,
                                     dtype=upcast(mu, logvar, eps), **tol_of(mu, logvar, eps))
    i = data.draw(st.integers(0, 2))                                   # one of them not float, or all (D,) or ()
    assert_value_error(vae_lib.reparameterize, *(t.to(bad) if j == i else t for j, t in enumerate((mu, logvar, eps))))
    assert_value_error(vae_lib.reparameterize, *(t.flatten() if fewer else t.new_zeros(()) for t in (mu, logvar, eps)))
    if z is not None and mu.dtype == logvar.dtype:                     # no eps: one draw of N(0, I) per element
        torch.manual_seed(seed)
        drawn = vae_lib.reparameterize(mu, logvar)
        torch.manual_seed(seed)
        noise = torch.randn(shape, dtype=drawn.dtype)
        assert drawn.shape == shape
        assert_same(drawn, eq10(mu, logvar, noise), **tol_of(mu, logvar))
        assert_value_error(vae_lib.reparameterize, mu, logvar, torch.zeros(data.draw(wrong_shape(shape))))


@counted()
@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(0, 3), st.integers(1, 2), st.integers(0, 4), st.integers(0, 4)),
       dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16, torch.bfloat16]), layout=layouts, seed=st.integers(0, 3),
       outlier=st.sampled_from([-0.25, 1.5, math.nan]), odd=st.sampled_from(ODD_DTYPES[2:]),
       other=st.lists(st.integers(0, 3), max_size=5).filter(lambda s: len(s) != 4))
def test_binarize_is_a_seeded_bernoulli_draw(data, shape, dtype, layout, seed, outlier, odd, other):
    x = data.draw(images(shape, levels=4))
    draw = lambda x, seed: vae_lib.binarize(x, torch.Generator().manual_seed(seed))  # noqa: E731
    # the oracle: torch's Bernoulli sampler on the same generator, on the values in contiguous memory (so a
    # layout must not change the sample)
    bernoulli = lambda x, seed: torch.bernoulli(x.contiguous(), generator=torch.Generator().manual_seed(seed))  # noqa
    match = r"expected .*\(N, C, H, W\)"
    b = assert_oracle_or_value_error(draw, bernoulli, as_layout(x.to(dtype), layout), seed,
                                     valid=dtype in FLOAT_DTYPES, match=match)
    if b is not None:
        assert b.shape == x.shape and b.dtype == dtype
        assert ((b == 0) | (b == 1)).all() and (b[x == 0] == 0).all() and (b[x == 1] == 1).all()
    if x.numel():                                                       # a value outside [0, 1], or NaN
        x.view(-1)[data.draw(st.integers(0, x.numel() - 1))] = outlier
        assert_value_error(draw, as_layout(x.to(dtype), layout), seed, match=match)
    assert_value_error(draw, x.clamp(0, 1).to(odd), seed, match=match)  # integer or bool images
    assert_value_error(draw, torch.rand(other), seed, match=match)


@counted()
@FUZZ
@given(data=st.data(), N=st.integers(2, 6), D=st.integers(0, 4), dtype=ANY_FLOAT, layout=layouts,
       factor=st.sampled_from([0.75, 0.99, 1.01, 1.5]), scale=st.sampled_from([1.0, 0.25, 1 / 16]),
       bad=st.sampled_from(NOT_FLOAT))
def test_active_units_match_numpy_variance(data, N, D, dtype, layout, factor, scale, bad):
    mu = as_layout((data.draw(values((N, D))) * scale).to(dtype), layout)
    threshold = 1e-2                                                    # or near the variance of one dimension
    if D and dtype in FLOAT_DTYPES + [torch.float16, torch.bfloat16]:
        threshold = factor * float(np.var(mu[:, data.draw(st.integers(0, D - 1))].double().numpy(), ddof=1)) or 1e-2
    oracle = lambda mu, t: torch.from_numpy(np.var(mu.double().numpy(), axis=0, ddof=1) > t)  # noqa: E731
    assert_oracle_or_value_error(vae_lib.active_units, oracle, mu, threshold, valid=True)
    for wrong in (mu[:1], mu[:0], mu.flatten(), mu[None], mu.to(bad)):  # N < 2, not (N, D), not float
        assert_value_error(vae_lib.active_units, wrong)


@functools.lru_cache(maxsize=None)
def small_vae(kind: str) -> nn.Module:
    """A VAE with a 2-D latent, or a hierarchical VAE with latents (3, 2), 8 hidden units: fast and seeded."""
    torch.manual_seed(0)
    return (vae_lib.VAE(2, 8) if kind == "vae" else HierarchicalVAE((3, 2), hidden=8, top_hidden=4)).eval()


def reference_chain(model, x, k):
    """The inference chain written with torch.distributions, on the noise the model draws: [(z_t, q_t)] for
    t = 1..T, each z_t (N, D_t), or (k, N, D_t) with k samples per image."""
    lead = (len(x),) if k is None else (k, len(x))
    ups = list(getattr(model, "up", []))
    mu, logvar = model.encoder(x.flatten(1)).chunk(2, -1)
    chain = []
    for t in range(len(ups) + 1):
        if t:
            mu, logvar = ups[t - 1](chain[-1][0]).chunk(2, -1)
        q = Normal(mu.expand(*lead, -1), torch.exp(0.5 * logvar).expand(*lead, -1))
        chain.append((q.mean + q.stddev * torch.randn(q.mean.shape), q))
    return chain


def reference_log_p_minus_log_q(model, chain):
    """sum over the levels below the top of log p(z_t | z_{t+1}) - log q(z_t | .)."""
    total = 0
    for t, down in enumerate(getattr(model, "down", [])):
        mu, logvar = down(chain[t + 1][0]).chunk(2, -1)
        z, q = chain[t]
        total = total + Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    return total


def reference_terms(model, x):
    """K&W Eq. 3 with one sampled chain: (E_q log p(x | z_1), KL(q || p)), each (N,)."""
    x = x.float()
    chain = reference_chain(model, x, None)
    recon = Bernoulli(logits=model.decode(chain[0][0])).log_prob(x).flatten(1).sum(-1)
    kl = kl_divergence(chain[-1][1], Normal(0.0, 1.0)).sum(-1) - reference_log_p_minus_log_q(model, chain)
    return recon, kl


def reference_iwae_nll(model, x, k, batch_size):
    """IWAE Eq. 8 batch by batch: log k - logsumexp_i (log p(x, z_i) - log q(z_i | x)), (N,)."""
    x, out = x.float(), [torch.zeros(0)]
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        chain = reference_chain(model, xb, k)
        z_top, q_top = chain[-1]
        log_w = (Bernoulli(logits=model.decode(chain[0][0])).log_prob(xb).flatten(-3).sum(-1)
                 + Normal(0.0, 1.0).log_prob(z_top).sum(-1) - q_top.log_prob(z_top).sum(-1)
                 + reference_log_p_minus_log_q(model, chain))
        out.append(math.log(k) - torch.logsumexp(log_w, 0))
    return torch.cat(out)


def seeded(fn, seed: int = 0):
    """fn, called after torch.manual_seed(seed): the kernel and its oracle draw the same noise."""
    def call(*args):
        torch.manual_seed(seed)
        with torch.no_grad():
            return fn(*args)
    return call


@counted()
@fuzz(20)
@given(kind=st.sampled_from(["vae", "hvae"]), N=st.integers(0, 3), layout=layouts, k=st.integers(1, 4),
       dtype=st.sampled_from([torch.float32] * 2 + [torch.float64, torch.float16, torch.bfloat16]),
       batch_size=st.integers(1, 3), seed=st.integers(0, 3), bad_shape=wrong_shape((None, 1, 28, 28)),
       odd=st.sampled_from(ODD_DTYPES[2:]))
def test_elbo_and_iwae_nll_match_torch_distributions_on_the_same_noise(kind, N, layout, k, dtype, batch_size, seed,
                                                                       bad_shape, odd):
    model = small_vae(kind)
    x = torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()  # binary images
    x = as_layout(x.to(dtype), layout)                                 # any float dtype: cast to the model's
    terms = assert_oracle_or_value_error(seeded(vae_lib.elbo), seeded(reference_terms), model, x, valid=True,
                                         atol=1e-4)
    assert terms[0].shape == terms[1].shape == (N,)
    nll = assert_oracle_or_value_error(seeded(vae_lib.iwae_nll), seeded(reference_iwae_nll), model, x, k, batch_size,
                                       valid=True, atol=1e-4)
    assert nll.shape == (N,)
    for bad in (torch.zeros(bad_shape), x.to(odd), torch.zeros(0, 784), torch.zeros(0, 1, 28, 27)):  # N = 0 too
        assert_value_error(vae_lib.elbo, model, bad, match=VAE_IMAGE_ERROR)
        assert_value_error(vae_lib.iwae_nll, model, bad, k, batch_size, match=VAE_IMAGE_ERROR)
    assert_value_error(vae_lib.iwae_nll, model, x, 0, batch_size, match="k must be")
    assert_value_error(vae_lib.iwae_nll, model, x, k, 0, match="batch_size must be")


@counted()
@FUZZ
@given(kind=st.sampled_from(["vae", "hvae"]), data=st.data(), lead=st.lists(st.integers(0, 2), max_size=2).map(tuple),
       dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16, torch.bfloat16]), t=st.sampled_from([0, 1, 3]),
       n=st.integers(0, 3), bad_D=st.integers(0, 4), odd=st.sampled_from(ODD_DTYPES[2:]))
def test_decode_p_step_and_sample_check_their_inputs(kind, data, lead, dtype, t, n, bad_D, odd):
    model = small_vae(kind)
    D1 = model.latent_dim if kind == "vae" else model.latent_dims[0]
    z = data.draw(values((*lead, D1))).to(dtype)
    mlp_decode = lambda z: model.decoder(z.float()).unflatten(-1, (1, 28, 28))  # noqa: E731
    match = rf"expected .*\(\.\.\., {D1}\)"
    assert_oracle_or_value_error(seeded(model.decode), seeded(mlp_decode), z, valid=True, match=match)
    for bad in ([torch.zeros(*lead, bad_D)] if bad_D != D1 else []) + [z.to(odd), torch.tensor(0.5)]:
        assert_value_error(model.decode, bad, match=match)
    if kind == "hvae":                                                 # p(z_1 | z_2): z_2 (..., 2) -> (..., 3) twice
        z2 = data.draw(values((*lead, 2))).to(dtype)
        p_step = lambda t, z: model.down[0](z.float()).chunk(2, -1)   # noqa: E731
        assert_oracle_or_value_error(seeded(model.p_step), seeded(p_step), 2, z2, valid=True)
        assert_value_error(model.p_step, t, z2, match=r"expected t in 2\.\.2")   # no other level
        for bad in ([torch.zeros(*lead, bad_D)] if bad_D != 2 else []) + [z2.to(odd), torch.tensor(0.5)]:
            assert_value_error(model.p_step, 2, bad, match=r"expected .*\(\.\.\., 2\) at level 2")
    sample = lambda n: model.sample(n, torch.Generator().manual_seed(0))  # noqa: E731
    images_ = result_or_value_error(sample, n, valid=True)
    assert images_.shape == (n, 1, 28, 28) and ((images_ >= 0) & (images_ <= 1)).all()
    assert torch.equal(images_, sample(n))
    assert_value_error(sample, -1 - n, match=r"expected n >= 0")


def brute_distances(z, codebook):
    """||z_m - e_k||^2 (M, K) by torch.cdist without the matrix-product shortcut, in float64."""
    return torch.cdist(z.double(), codebook.double(), compute_mode="donot_use_mm_for_euclid_dist").square()


def expansion_tolerance(z, codebook, dtype) -> dict:
    """The rounding error of ||z||^2 - 2 z.e + ||e||^2 in ``dtype``: a few ulps of the largest squared norm."""
    scale = 1.0 + sum(float(t.detach().double().square().sum(-1).max()) if t.numel() else 0.0 for t in (z, codebook))
    return {"rtol": 0.0, "atol": 4 * (z.shape[-1] + 2) * torch.finfo(dtype).eps * scale}


def assert_nearest(codes, z, codebook, atol: float) -> None:
    """codes (M,) int64 pick, for each row of z, a codebook row at the brute-force minimum distance (up to atol:
    any of a tie may win)."""
    assert codes.shape == (len(z),) and codes.dtype == torch.int64
    if len(z):
        d = brute_distances(z, codebook)
        assert (d.gather(1, codes[:, None])[:, 0] <= d.min(1).values + atol).all(), (codes, d)


@counted()
@FUZZ
@given(data=st.data(), M=st.integers(0, 6), K=st.integers(1, 5), D=st.integers(0, 4), dtype=ANY_FLOAT,
       layout=layouts, bad=st.sampled_from(NOT_FLOAT))
def test_squared_distances_and_nearest_code_match_cdist(data, M, K, D, dtype, layout, bad):
    z = as_layout(data.draw(values((M, D))).to(dtype), layout)
    codebook = data.draw(values((K, D))).to(data.draw(st.sampled_from([dtype] + FLOAT_DTYPES)))
    narrow = torch.float64 if z.dtype == codebook.dtype == torch.float64 else torch.float32
    tol = expansion_tolerance(z, codebook, narrow)
    assert_oracle_or_value_error(vq_lib.squared_distances, brute_distances, z, codebook, valid=True, **tol)
    assert_oracle_or_value_error(vq_lib.squared_distances, brute_distances, z, codebook[:0], valid=True, **tol)
    codes = result_or_value_error(vq_lib.nearest_code, z, codebook, valid=True)
    assert_nearest(codes, z, codebook, tol["atol"])
    assert_value_error(vq_lib.nearest_code, z, codebook[:0])           # no code to be nearest
    for wrong in ((z.to(bad), codebook), (z, codebook.to(bad))):       # integer or bool
        assert_value_error(vq_lib.squared_distances, *wrong)
        assert_value_error(vq_lib.nearest_code, *wrong)
    for wrong in (torch.zeros(data.draw(wrong_shape((None, D)))), torch.zeros(K, D + 1)):
        assert_value_error(vq_lib.squared_distances, z, wrong)
        assert_value_error(vq_lib.nearest_code, z, wrong)


SOME_SHAPES = st.lists(st.integers(1, 3), max_size=4).map(tuple) | st.lists(st.integers(0, 3), max_size=4).map(tuple)
FLOAT_PAIRS = list(itertools.product(FLOAT_DTYPES + [torch.float16, torch.bfloat16], repeat=2))


@counted()
@FUZZ
@given(data=st.data(), shape=SOME_SHAPES, layout=layouts)
def test_straight_through_has_the_value_of_z_q_and_the_gradient_of_z_e(data, shape, layout):
    e, q, w = (data.draw(values(shape)) for _ in "ewq")
    for dtypes in FLOAT_PAIRS:                                          # every pair of float dtypes
        z_e = as_layout(e.to(dtypes[0], copy=True), layout).requires_grad_(True)
        z_q = q.to(dtypes[1], copy=True).requires_grad_(True)
        out = assert_oracle_or_value_error(vq_lib.straight_through, lambda z_e, z_q: z_q.detach(), z_e, z_q,
                                           valid=True, **tol_of(z_e, z_q))  # the value of z_q
        (out * w.to(out.dtype)).sum().backward()
        assert_same(z_e.grad, w.to(out.dtype).to(z_e.dtype), rtol=0, atol=0)  # the gradient goes to z_e, unchanged
        assert z_q.grad is None
    assert_value_error(vq_lib.straight_through, z_e, torch.zeros(data.draw(wrong_shape(shape))))


@counted()
@FUZZ
@given(data=st.data(), shape=SOME_SHAPES, layout=layouts, beta=st.sampled_from([0.0, 0.25, 1.0]))
def test_vq_loss_is_codebook_plus_beta_commitment(data, shape, layout, beta):
    e, q = (data.draw(values(shape)) for _ in "eq")
    mean_square = lambda z_e, z_q, beta: (1 + beta) * (z_e.double() - z_q.double()).square().mean()  # noqa: E731
    for dtypes in FLOAT_PAIRS:
        z_e = as_layout(e.to(dtypes[0], copy=True), layout).requires_grad_(True)
        z_q = q.to(dtypes[1], copy=True).requires_grad_(True)
        loss = assert_oracle_or_value_error(vq_lib.vq_loss, mean_square, z_e, z_q, beta, valid=True, **tol_of(z_e, z_q))
        if z_e.numel():                                                 # Eq. 3's stop-gradients split the gradient
            g_e, g_q = torch.autograd.grad(loss, (z_e, z_q))          # each in its input's dtype
            diff = (z_e.double() - z_q.double()).detach() * 2 / z_e.numel()
            assert_same(g_e, beta * diff, **(tolerance(z_e.dtype) or tol_of(z_e, z_q)))
            assert_same(g_q, -diff, **(tolerance(z_q.dtype) or tol_of(z_e, z_q)))
    assert_value_error(vq_lib.vq_loss, z_e, torch.zeros(data.draw(wrong_shape(shape))))


def numpy_counts(codes, K):
    return torch.from_numpy(np.bincount(codes.numpy().astype(np.int64).ravel(), minlength=K))


def numpy_perplexity(codes, K):
    """exp(H(p)) of the code histogram; NaN when there are no codes (an empty histogram has no entropy)."""
    counts = np.bincount(codes.numpy().astype(np.int64).ravel(), minlength=K)
    if counts.sum() == 0:
        return math.nan
    p = counts[counts > 0] / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


@counted()
@FUZZ
@given(data=st.data(), shape=st.lists(st.integers(0, 4), max_size=3).map(tuple), K=st.integers(1, 6),
       dtype=st.sampled_from([torch.int64, torch.int32, torch.uint8]), layout=layouts,
       bad=st.sampled_from([torch.float32, torch.bool]), outside=st.sampled_from([-1, 0]))
def test_code_counts_perplexity_and_dead_codes_match_numpy(data, shape, K, dtype, layout, bad, outside):
    codes = data.draw(arrays(np.int64, shape, elements=st.integers(0, K - 1)))
    codes = as_layout(torch.from_numpy(codes).to(dtype), layout)
    dead = lambda codes, K: int((numpy_counts(codes, K) == 0).sum())  # noqa: E731
    assert_oracle_or_value_error(vq_lib.code_counts, numpy_counts, codes, K, valid=True)
    assert_oracle_or_value_error(vq_lib.perplexity, numpy_perplexity, codes, K, valid=True, rtol=1e-9)
    assert_oracle_or_value_error(vq_lib.dead_codes, dead, codes, K, valid=True)
    wrong = [codes.to(bad)]                                            # float or bool codes
    if codes.numel():                                                  # a code just outside [0, K)
        flat = codes.flatten().clone()
        flat[data.draw(st.integers(0, codes.numel() - 1))] = -1 if outside < 0 and dtype != torch.uint8 else K
        wrong.append(flat.reshape(codes.shape))
    for kernel in (vq_lib.code_counts, vq_lib.perplexity, vq_lib.dead_codes):
        for codes_ in wrong:
            assert_value_error(kernel, codes_, K, match=RANGE_ERROR + "|" + SHAPE_ERROR)


def numpy_lloyd(z, k, iters, init, seed):
    """Lloyd's k-means written out in numpy with brute-force distances; an empty cluster keeps its centre."""
    x = z.double().numpy()
    start = init if init is not None else z[torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:k]]
    centres = start.double().numpy().copy()
    in_dtype = lambda c: torch.from_numpy(c).to(z.dtype).double().numpy()  # noqa: E731  (centres are kept in z's dtype)
    for _ in range(iters):
        d = ((x[:, None] - centres[None]) ** 2).sum(-1)                       # (M, k)
        gap = np.sort(d, 1)[:, 1:2] - d.min(1, keepdims=True) if k > 1 else np.ones((len(x), 1))
        assume(((gap == 0) | (gap > 1e-4 * (1 + d.max()))).all())       # a near-tie may go either way
        assign = d.argmin(1)
        for j in range(k):
            if (assign == j).any():
                centres[j] = in_dtype(x[assign == j].mean(0))
    return torch.from_numpy(centres)


@counted()
@fuzz(40)
@given(data=st.data(), k=st.integers(1, 4), extra=st.integers(0, 5), D=st.integers(1, 3), iters=st.integers(0, 3),
       dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts, rows=st.booleans(),
       seed=st.integers(0, 3))
def test_kmeans_matches_a_numpy_lloyd_loop(data, k, extra, D, iters, dtype, layout, rows, seed):
    M = k + extra
    z = as_layout(data.draw(values((M, D))).round().to(dtype), layout)   # integers: exact first distances
    init = None                                                          # k random rows of z, or these rows:
    if rows:                                                             # repeats among them: empty clusters
        init = z[torch.tensor(data.draw(st.lists(st.integers(0, min(M - 1, 2)), min_size=k, max_size=k)))]
    run = lambda z, k, iters, init, seed: vq_lib.kmeans(z, k, iters, init, torch.Generator().manual_seed(seed))  # noqa
    assert_oracle_or_value_error(run, numpy_lloyd, z, k, iters, init, seed, valid=dtype in FLOAT_DTYPES)
    wrong_init = torch.zeros(data.draw(wrong_shape((k, D))), dtype=z.dtype)
    for bad in ((z, 0, iters, None), (z, M + 1, iters, None), (z.long(), k, iters, None), (z, k, iters, wrong_init)):
        assert_value_error(run, *bad, seed)


@functools.lru_cache(maxsize=None)
def small_quantizer(K: int, D: int) -> vq_lib.VectorQuantizer:
    torch.manual_seed(K * 10 + D)
    return vq_lib.VectorQuantizer(K, D)


@counted()
@FUZZ
@given(data=st.data(), N=st.integers(0, 2), D=st.integers(1, 3), H=st.sampled_from([1, 1, 2, 3, 0]),
       W=st.sampled_from([1, 2, 3]), K=st.integers(1, 5), dtype=ANY_FLOAT, layout=layouts, train=st.booleans(),
       bad=st.sampled_from(NOT_FLOAT))
def test_vector_quantizer_matches_brute_force(data, N, D, H, W, K, dtype, layout, train, bad):
    q = small_quantizer(K, D).train(train)
    with torch.no_grad():
        q.codebook.copy_(data.draw(values((K, D))))
        q.counts.zero_()
    q.codebook.grad = None
    z_e = as_layout(data.draw(values((N, D, H, W))).to(dtype), layout).requires_grad_(True)
    match = rf"expected .*(\(N, {D}, H, W\)|\(M, D\))"
    assert_value_error(q, z_e.detach().to(bad), match=match)          # integer or bool encoder outputs
    assert not q.counts.any()                                          # a rejected batch is not counted
    out = result_or_value_error(q, z_e, valid=True)
    if out is not None:
        z_q, loss, codes = out
        z = z_e.detach().permute(0, 2, 3, 1).reshape(-1, D)                        # (N*H*W, D)
        tol = expansion_tolerance(z, q.codebook, torch.float64 if dtype == torch.float64 else torch.float32)
        assert_nearest(codes.flatten(), z, q.codebook.detach(), tol["atol"])
        assert codes.shape == (N, H, W) and z_q.shape == z_e.shape
        e = q.codebook.detach()[codes].permute(0, 3, 1, 2)                          # the lookup, (N, D, H, W)
        assert_same(z_q, e, **tol_of(z_e))
        assert_same(loss, (1 + q.beta) * (z_e.double() - e.double()).square().mean(), **tol_of(z_e))
        assert_same(q.counts, numpy_counts(codes, K) * train)
        w = data.draw(values((N, D, H, W))).to(z_q.dtype)
        ((z_q * w).sum() + torch.nan_to_num(loss)).backward()           # straight-through + Eq. 3's two terms
        n = max(z_e.numel(), 1)
        grad_tol = tolerance(dtype) or tol_of(z_e)                       # z_e.grad comes in z_e's dtype
        assert_same(z_e.grad, w.double() + q.beta * 2 * (z_e.double() - e.double()).detach() / n, **grad_tol)
        flat = lambda t: t.permute(0, 2, 3, 1).reshape(-1, D)          # noqa: E731
        expected = torch.zeros(K, D, dtype=torch.float64).index_add_(0, codes.flatten(),
                                                                    flat(2 * (e.double() - z_e.double().detach()) / n))
        assert_same(q.codebook.grad, expected, **tol_of(q.codebook))
        assert_same(q.embed(codes), e)
    assert_value_error(q, torch.zeros(data.draw(wrong_shape((None, D, None, None)))))
    bad_codes = torch.full((1, 2, 2), data.draw(st.sampled_from([-1, K])))
    assert_value_error(q.embed, bad_codes, match=RANGE_ERROR + r"|\[0, \d+\)")
    assert_value_error(q.embed, torch.zeros(data.draw(wrong_shape((None, None, None))), dtype=torch.int64))


@counted()
@FUZZ
@given(data=st.data(), M=st.integers(1, 4), D=st.integers(1, 3), K=st.integers(1, 4), dtype=ANY_FLOAT,
       seed=st.integers(0, 3), wrong=st.sampled_from(["shape", "shape", "empty", "dtype"]))
def test_restart_dead_codes_and_kmeans_init_check_the_encoder_outputs(data, M, D, K, dtype, seed, wrong):
    q = small_quantizer(K, D).train()
    with torch.no_grad():
        q.codebook.copy_(data.draw(values((K, D))))
    used = data.draw(arrays(np.float64, (K,), elements=st.sampled_from([0.0, 0.0, 1.0, 3.0])))
    q.counts.copy_(torch.from_numpy(used))
    before = q.codebook.detach().clone()
    z = data.draw(values((M, D))).to(dtype)
    match = rf"expected .*\(M, {D}\)"
    bad = {"shape": lambda: data.draw(values(data.draw(wrong_shape((None, D))))).to(dtype), "empty": lambda: z[:0],
           "dtype": lambda: z.to(data.draw(st.sampled_from(NOT_FLOAT)))}[wrong]()
    assert_value_error(q.restart_dead_codes, bad, 1.0, torch.Generator().manual_seed(seed), match=match)
    if wrong != "dtype":                                               # (kmeans_init_ takes integer outputs too)
        assert_value_error(q.kmeans_init_, bad, match=rf"{match}|M >= k")
    assert torch.equal(q.codebook.detach(), before) and torch.equal(q.counts, torch.from_numpy(used).to(q.counts))
    if M < K:                                                          # fewer outputs than codes
        assert_value_error(q.kmeans_init_, z, match=r"M >= k")
    moved = result_or_value_error(q.restart_dead_codes, z, 1.0, torch.Generator().manual_seed(seed), valid=True)
    dead = torch.from_numpy(used < 1)
    assert moved == int(dead.sum()) and (q.counts == 0).all()
    assert torch.equal(q.codebook.detach()[~dead], before[~dead])
    for row in q.codebook.detach()[dead]:
        assert (row == z.float()).all(1).any()                      # each restarted code is an encoder output


@functools.lru_cache(maxsize=None)
def small_vqvae() -> vq_lib.VQVAE:
    torch.manual_seed(0)
    model = vq_lib.VQVAE(num_codes=8, dim=4, width=8).eval()
    with torch.no_grad():
        model.quantizer.codebook.normal_()
    return model


@counted()
@fuzz(15)
@given(data=st.data(), N=st.integers(0, 2), dtype=st.sampled_from([torch.float32] * 3 + [torch.float64] + HALF_DTYPES),
       layout=layouts, seed=st.integers(0, 3), code=st.sampled_from([0, 7, 3]), bad_code=st.sampled_from([-1, 8]),
       wrong=st.sampled_from(["shape", "shape", "dtype"]))
def test_vqvae_tokens_are_the_nearest_codes_and_decode_like_the_forward_pass(data, N, dtype, layout, seed, code,
                                                                            bad_code, wrong):
    model = small_vqvae()
    x = as_layout(torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(dtype), layout)
    bad = torch.zeros(data.draw(wrong_shape((None, 1, 28, 28)))) if wrong == "shape" else \
        x.to(data.draw(st.sampled_from(NOT_FLOAT)))
    assert_value_error(model.encode_tokens, bad, match=r"expected .*(\(B, 1, 28, 28\)|float)")
    tokens = result_or_value_error(model.encode_tokens, x, valid=True)  # any float dtype: cast
    if tokens is not None:
        with torch.no_grad():
            z = model.encode(x).permute(0, 2, 3, 1).reshape(-1, 4)
            x_hat, _, codes = model(x)
        assert tokens.shape == (len(x), 7, 7) and torch.equal(tokens, codes)
        assert torch.equal(tokens, model.encode_tokens(x.float().contiguous()))  # any float dtype or layout
        assert_nearest(tokens.flatten(), z, model.quantizer.codebook.detach(),
                       expansion_tolerance(z, model.quantizer.codebook, torch.float32)["atol"])
        assert_same(model.decode_tokens(tokens), x_hat, atol=1e-6)
        edited = tokens.clone()
        edited.view(-1)[:1] = code                                       # one token set to another code
        assert model.decode_tokens(edited).shape == (N, 1, 28, 28)
        if N:
            edited.view(-1)[:1] = bad_code                               # one token out of range
            assert_value_error(model.decode_tokens, edited, match=r"\[0, 8\)")
    assert_value_error(model.decode_tokens, torch.zeros(data.draw(wrong_shape((None, 7, 7))), dtype=torch.int64))
    assert_value_error(model.decode_tokens, torch.zeros(1, 7, 7))        # float tokens
    assert_value_error(model.decode, torch.zeros(1, 4, 7, 7, dtype=torch.int64), match=r"\(N, 4, 7, 7\)")
    assert_value_error(model.decode, torch.zeros(data.draw(wrong_shape((None, 4, 7, 7)))), match=r"\(N, 4, 7, 7\)")
