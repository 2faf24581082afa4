"""Chapter 04's shipped checkpoint (``python -m course_lib checkpoints yolo_v1``): YOLO v1 on the Fashion scenes."""

from __future__ import annotations


def _yolo():
    from course_lib.yolo import model, train

    return model.YOLOv1(), lambda m: train.train_yolo(m, train.SHIPPED)


CHECKPOINTS = {"yolo_v1": _yolo}
