"""Exercise answers for the core notebook (00), and the one way every check reports.

A ``check_*`` function computes the right answer from the course's own code or data and compares it with
the learner's; nothing is stored. ``None`` means "not answered yet".
"""

from __future__ import annotations

import math


def report(answer, expected, hint: str = "") -> bool:
    """Print whether ``answer`` equals ``expected`` (numbers within 1e-6 relative); return the verdict."""
    if answer is None:
        print("Not answered yet: replace None with your answer and run the cell again.")
        return False
    if isinstance(expected, float) or isinstance(answer, float):
        ok = math.isclose(float(answer), float(expected), rel_tol=1e-6, abs_tol=1e-9)
    else:
        ok = answer == expected
    print("Correct!" if ok else f"Not quite ({answer!r}). Hint: {hint}")
    return ok


def check_images_per_class(answer) -> bool:
    """How many Fashion-MNIST *training* images does each class have?"""
    from course_lib.data import fashion_mnist

    counts = fashion_mnist("train").labels.bincount()
    expected = int(counts[0]) if bool((counts == counts[0]).all()) else None
    return report(answer, expected, "count the labels with torch.bincount")


def check_scene_mask_shape(answer, n_objects: int = 3, size: int = 64) -> bool:
    """Shape (a tuple) of ``target['masks']`` for a scene with ``n_objects`` objects on a size x size canvas."""
    from course_lib.data import SceneConfig, fashion_scenes

    cfg = SceneConfig(size=size, min_items=n_objects, max_items=n_objects, scale=(0.25, 0.3), max_iou=0.0)
    scenes = fashion_scenes(20, seed=0, cfg=cfg)
    target = next(t for t in scenes.targets if len(t["labels"]) == n_objects)
    return report(None if answer is None else tuple(answer), tuple(target["masks"].shape),
                  "one (H, W) mask per object, stacked")


def check_profile(answer, env_value: str = "smoke") -> bool:
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
