"""Chapter 03's shipped checkpoint (``python -m course_lib checkpoints rcnn``): R-CNN on the Fashion scenes.
Chapters 04 and 05 declare theirs in ``course_lib.yolo.shipped`` and ``course_lib.maskrcnn.shipped``."""

from __future__ import annotations


def _rcnn():
    from course_lib.detection import rcnn

    return rcnn.RCNN(), lambda m: rcnn.train_rcnn(m, rcnn.SHIPPED)


CHECKPOINTS = {
    "rcnn": _rcnn,
}
