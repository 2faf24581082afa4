"""Chapter 02's shipped checkpoints (``python -m course_lib checkpoints``): the scene classifier whose saliency
is compared with boxes, and the box regressor it is compared against."""

from __future__ import annotations


def _scene_classifier():
    from course_lib.inside import scenes

    return scenes.build_scene_classifier(), lambda m: scenes.train_scene_classifier(m, scenes.SHIPPED)


def _scene_box_regressor():
    from course_lib.inside import scenes
    from course_lib.inside.localization import BoxRegressor

    return BoxRegressor(size=scenes.SIZE), lambda m: scenes.train_box_regressor(m, scenes.SHIPPED)


CHECKPOINTS = {"scene_classifier": _scene_classifier, "scene_box_regressor": _scene_box_regressor}
