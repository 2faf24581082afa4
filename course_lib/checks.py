"""Exercise answers for the core notebook (00), and the one way every check reports.

A ``check_*`` function computes the right answer from the course's own code or data and compares it with
the learner's; nothing is stored. ``None`` means "not answered yet". Three kinds of exercise share it:

- hand computations, ``report(answer, expected, hint, sig=3)``: a number is right when it equals the
  expected one to the precision the question asks for (``sig`` significant digits or ``decimals``), so a
  correctly rounded answer passes and a plausible wrong one does not;
- "write the kernel", ``check_kernel(fn, reference, cases)``: the learner's function against course_lib's on
  several seeded random inputs including an edge case, CS231n style (max relative error, the first input
  that disagrees);
- "predict, then measure", ``check_prediction(prediction, measured, choices)``.

A check prints one sentence and returns a :class:`Verdict`: true or false for code and tests, and nothing
echoed under the sentence in a notebook.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch


class Verdict:
    """A check's result. ``bool(verdict)`` is the verdict; as a cell's last value it displays nothing, so the
    printed sentence is the only output (no bare ``True`` under it)."""

    __slots__ = ("ok",)

    def __init__(self, ok: bool):
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other: object) -> bool:
        return self.ok == bool(other) if isinstance(other, (bool, Verdict)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return f"Verdict({self.ok})"

    def _ipython_display_(self) -> None:  # IPython shows nothing for the cell's value
        pass


NOT_ANSWERED = "Not answered yet: replace None with your answer and run the cell again."


def tolerance(expected: float, sig: int | None = 3, decimals: int | None = None) -> float:
    """Half a unit in the last place asked for: ``decimals`` places, else ``sig`` significant digits."""
    if decimals is not None:
        return 0.5 * 10.0 ** -decimals
    if sig is None or expected == 0:
        return 0.5 * 10.0 ** -(sig or 6) if expected == 0 else 1e-9 * abs(expected)
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(expected))) - sig + 1)


def same_number(answer: float, expected: float, sig: int | None = 3, decimals: int | None = None) -> bool:
    """``answer`` equals ``expected`` to the asked precision (rounding either way at the last digit allowed)."""
    return abs(float(answer) - float(expected)) <= tolerance(float(expected), sig, decimals) * (1 + 1e-9) + 1e-15


def report(answer, expected, hint: str = "", *, sig: int | None = 3, decimals: int | None = None) -> Verdict:
    """Print whether ``answer`` equals ``expected`` and return the verdict.

    Numbers (and each number of a tuple or list) are compared to the precision the question asks for:
    ``decimals`` places when given, else ``sig`` significant digits (``sig=None``: 1e-9 relative); anything
    else with ``==``.
    """
    if answer is None:
        print(NOT_ANSWERED)
        return Verdict(False)
    ok = _equal(answer, expected, sig, decimals)
    print("Correct!" if ok else f"Not quite ({answer!r}). Hint: {hint}")
    return Verdict(ok)


def _equal(answer, expected, sig, decimals) -> bool:
    if isinstance(expected, (tuple, list)):
        return (isinstance(answer, (tuple, list)) and len(answer) == len(expected)
                and all(_equal(a, e, sig, decimals) for a, e in zip(answer, expected)))
    if isinstance(expected, float) or (isinstance(answer, float) and isinstance(expected, int)):
        try:
            return same_number(float(answer), float(expected), sig, decimals)
        except (TypeError, ValueError):
            return False
    return answer == expected


def rel_error(x: torch.Tensor, y: torch.Tensor) -> float:
    """max |x - y| / max |y|: the error relative to the size of the reference output as a whole (an element
    near zero, where two correct computations round differently, does not blow it up)."""
    x, y = x.detach().double(), y.detach().double()
    return float((x - y).abs().max() / y.abs().max().clamp_min(1e-30)) if y.numel() else 0.0


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def check_kernel(fn: Callable, reference: Callable, cases: Sequence[tuple[str, tuple]], *, name: str,
                 reference_name: str, hint: str = "", rtol: float | None = None) -> Verdict:
    """Run the learner's ``fn`` and course_lib's ``reference`` on each case ``(description, args)`` and compare
    every returned tensor (CS231n's check: print the max relative error; name the first input that disagrees).

    A case agrees when ``rel_error <= rtol`` (default: 1e-4 for float32 outputs, 1e-9 for float64). ``fn``
    returning None means "not answered yet". Either way the cells after the check use ``reference``.
    """
    after = (f"The cells below use `{reference_name}`." if reference_name.startswith("course_lib")
             else f"The cells below use course_lib's `{reference_name}`.")
    worst = 0.0
    for i, (description, args) in enumerate(cases, 1):
        expected = _as_tuple(reference(*args))
        try:
            got = fn(*args)
        except Exception as err:  # the learner's code failed on this input: say where, not a traceback
            print(f"Not quite: {name} raised {type(err).__name__}: {err} on input {i} ({description}). "
                  f"Hint: {hint} {after}")
            return Verdict(False)
        if got is None:
            print(f"Not answered yet: write the body of {name} above and run the cell again. {after}")
            return Verdict(False)
        got = _as_tuple(got)
        shapes_ok = len(got) == len(expected) and all(
            isinstance(g, torch.Tensor) and g.shape == e.shape for g, e in zip(got, expected))
        if not shapes_ok:
            shown = [tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__ for g in got]
            print(f"Not quite: on input {i} ({description}) {name} returned {shown}, expected shapes "
                  f"{[tuple(e.shape) for e in expected]}. Hint: {hint} {after}")
            return Verdict(False)
        for g, e in zip(got, expected):
            tol = rtol if rtol is not None else (1e-9 if e.dtype == torch.float64 else 1e-4)
            err = rel_error(g, e)
            worst = max(worst, err)
            if not err <= tol:  # (a NaN disagrees too)
                print(f"Not quite: input {i} ({description}) disagrees with {reference_name}: max relative error "
                      f"{err:.2e} (allowed {tol:.0e}). Hint: {hint} {after}")
                return Verdict(False)
    print(f"Correct! {name} agrees with {reference_name} on all {len(cases)} inputs "
          f"(max relative error {worst:.1e}). {after}")
    return Verdict(True)


def check_prediction(prediction: Any, measured: Any, choices: Sequence[Any] | None = None,
                     why: str = "") -> Verdict:
    """Compare a prediction made before a measurement with what the cell measured; ``why`` explains it."""
    if prediction is None:
        print(f"No prediction made: measured {measured!r}. {why}".strip())
        return Verdict(False)
    if choices is not None and prediction not in choices:
        print(f"Your prediction {prediction!r} is not one of {list(choices)}; measured {measured!r}. {why}".strip())
        return Verdict(False)
    ok = prediction == measured
    print((f"Right: measured {measured!r}. " if ok else f"Measured {measured!r}, not {prediction!r}. ") + why)
    return Verdict(ok)


def check_images_per_class(answer) -> Verdict:
    """How many Fashion-MNIST *training* images does each class have (exact)? 6,000: the total (60,000), the
    test set's share (1,000) or train + test (7,000) fail."""
    from course_lib.data import fashion_mnist

    counts = fashion_mnist("train").labels.bincount()
    expected = int(counts[0]) if bool((counts == counts[0]).all()) else None
    return report(answer, expected, "60,000 training images, 10 classes, and torch.bincount of the labels shows "
                                    "they are balanced", sig=None)


def check_scene_mask_shape(answer, n_objects: int = 3, size: int = 64) -> Verdict:
    """Shape (a tuple) of ``target['masks']`` for a scene with ``n_objects`` objects on a size x size canvas."""
    from course_lib.data import SceneConfig, fashion_scenes

    cfg = SceneConfig(size=size, min_items=n_objects, max_items=n_objects, scale=(0.25, 0.3), max_iou=0.0)
    scenes = fashion_scenes(20, seed=0, cfg=cfg)
    target = next(t for t in scenes.targets if len(t["labels"]) == n_objects)
    return report(None if answer is None else tuple(answer), tuple(target["masks"].shape),
                  "one (H, W) mask per object, stacked", sig=None)


def check_profile(answer, env_value: str = "smoke") -> Verdict:
    """Which profile does PROFILE = 'auto' give when COURSE_PROFILE is set to ``env_value``?"""
    import os

    from course_lib.profiles import resolve

    old = os.environ.get("COURSE_PROFILE")
    os.environ["COURSE_PROFILE"] = env_value
    try:
        expected = resolve("auto")
    finally:
        if old is None:
            os.environ.pop("COURSE_PROFILE")
        else:
            os.environ["COURSE_PROFILE"] = old
    return report(answer, expected, "'auto' defers to the environment variable first")
