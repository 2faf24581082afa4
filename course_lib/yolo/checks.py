"""Answers to notebook 04's exercises, computed with this chapter's code (never stored).

Hand computations (``check_grid_cell``, ``check_yolo_outputs``) compare an answer with the course's own
computation to the precision the question asks for; the seeded inputs of the "write the YOLO v1 loss" exercise
(``yolo_loss_cases``) are built here so that tests/test_exercises_03_04.py checks the same inputs as the notebook.
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.checks import Verdict, check_kernel, report
from course_lib.detection.checks import random_boxes

YOLO_TERMS = ("coord_xy", "coord_wh", "obj", "noobj", "class")


# --- hand computations ---------------------------------------------------------------------------------------

def check_grid_cell(answer, box=(20.0, 36.0, 44.0, 60.0), S: int = 8, size: int = 64) -> Verdict:
    """(row, col) of the YOLO grid cell responsible for ``box`` (xyxy) on a size x size image with S x S cells."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    expected = (int(cy * S // size), int(cx * S // size))
    return report(None if answer is None else tuple(int(v) for v in answer), expected,
                  "the cell that contains the box centre: row from y, column from x, each = floor(coord * S / size), "
                  "counted from 0")


def check_yolo_outputs(answer, S: int = 7, B: int = 2, C: int = 20) -> Verdict:
    """How many numbers does YOLO v1 output per image for an S x S grid, B boxes per cell and C classes?
    A count: compared exactly."""
    return report(answer, S * S * (B * 5 + C),
                  "each cell predicts B boxes of (x, y, w, h, confidence) and one set of C class probabilities",
                  sig=None)


# --- seeded inputs of the "write the kernel" exercise ---------------------------------------------------------

def _random_predictions(N: int, S: int, B: int, C: int, g: torch.Generator, dtype=torch.float64) -> Tensor:
    """pred (N, S, S, B * 5 + C) laid out as ``YOLOv1`` outputs it: x, y, conf sigmoids, w, h squared
    sigmoids, class probabilities a softmax."""
    raw = torch.randn(N, S, S, B * 5 + C, generator=g, dtype=dtype)
    boxes = raw[..., :B * 5].reshape(N, S, S, B, 5).sigmoid()
    boxes = torch.cat([boxes[..., :2], boxes[..., 2:4].square(), boxes[..., 4:]], dim=-1)
    return torch.cat([boxes.flatten(3), raw[..., B * 5:].softmax(-1)], dim=-1)


def _random_targets(N: int, S: int, C: int, g: torch.Generator, size: int = 64) -> Tensor:
    """target (N, S, S, 5 + C) float64 from ``encode_targets`` of 1-4 random boxes per image."""
    from course_lib.yolo.model import encode_targets

    targets = []
    for _ in range(N):
        k = int(torch.randint(1, 5, (1,), generator=g))
        targets.append({"boxes": random_boxes(k, g, float(size)).clamp(0, size),
                        "labels": torch.randint(1, C + 1, (k,), generator=g)})
    return encode_targets(targets, S=S, size=size, num_classes=C).double()


def yolo_loss_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """Inputs (pred (N, S, S, B*5 + C), target (N, S, S, 5 + C)) float64 for a YOLO v1 loss kernel: random
    predictions and encoded random scenes at the course's shapes (S = 8, B = 2, C = 10), the paper's (S = 7,
    B = 2, C = 20) and B = 3; and the edge cases no object in any cell and an object in every cell."""
    g = torch.Generator().manual_seed(seed)
    cases = [
        ("2 random scenes, S=8, B=2, C=10 (the course's shapes)",
         (_random_predictions(2, 8, 2, 10, g), _random_targets(2, 8, 10, g))),
        ("a batch of one scene, S=8, B=2, C=10", (_random_predictions(1, 8, 2, 10, g), _random_targets(1, 8, 10, g))),
        ("3 random scenes, the paper's shapes S=7, B=2, C=20",
         (_random_predictions(3, 7, 2, 20, g), _random_targets(3, 7, 20, g))),
        ("2 random scenes, B=3 predictors per cell",
         (_random_predictions(2, 8, 3, 10, g), _random_targets(2, 8, 10, g))),
        ("no object in any cell", (_random_predictions(2, 8, 2, 10, g), torch.zeros(2, 8, 8, 15, dtype=torch.float64))),
    ]
    full = torch.zeros(2, 8, 8, 15, dtype=torch.float64)             # an object in every cell
    full[..., 0] = 1
    full[..., 1:3] = torch.rand(2, 8, 8, 2, generator=g, dtype=torch.float64)
    full[..., 3:5] = 0.05 + 0.5 * torch.rand(2, 8, 8, 2, generator=g, dtype=torch.float64)
    full[..., 5:] = torch.nn.functional.one_hot(torch.randint(0, 10, (2, 8, 8), generator=g), 10).double()
    cases.append(("an object in every cell", (_random_predictions(2, 8, 2, 10, g), full)))
    return cases


def check_yolo_loss(fn, cases=None) -> Verdict:
    """The learner's ``fn(pred, target) -> {term: scalar}`` against ``yolo_loss`` on ``yolo_loss_cases()``,
    term by term; the hint names the terms that disagree."""
    from course_lib.checks import rel_error
    from course_lib.yolo.model import yolo_loss

    cases = yolo_loss_cases() if cases is None else cases
    hint = ("1^obj_ij = one_hot(best, B) * has_object from `responsible_predictor`; 1^noobj_ij = 1 - 1^obj_ij, "
            "per predictor; compare sqrt(w), sqrt(h); sum over cells and predictors, divide by N; return a dict "
            "of the five terms.")
    wrong = []
    for _, args in cases:   # which terms disagree (for the hint); check_kernel below gives the verdict
        try:
            got, expected = fn(*args), yolo_loss(*args)
            wrong += [k for k in YOLO_TERMS if k not in wrong and isinstance(got, dict)
                      and isinstance(got.get(k), Tensor) and got[k].shape == expected[k].shape
                      and not rel_error(got[k], expected[k]) <= (1e-9 if expected[k].dtype == torch.float64 else 1e-4)]
        except Exception:  # noqa: BLE001 -- check_kernel reports the error with its input
            break
    if wrong:
        hint = f"The terms that disagree: {', '.join(wrong)}. {hint}"

    def terms(loss):
        def by_term(pred, target):
            out = loss(pred, target)
            return None if out is None else tuple(out[k] for k in YOLO_TERMS)
        return by_term

    return check_kernel(terms(fn), terms(yolo_loss), cases, name=getattr(fn, "__name__", "your loss"),
                        reference_name="course_lib.yolo.model.yolo_loss", hint=hint)
