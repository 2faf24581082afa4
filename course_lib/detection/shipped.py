"""Chapters 03-05's shipped checkpoints (``python -m course_lib checkpoints``): R-CNN, YOLO v1, our Mask R-CNN,
its RoIPool ablation and torchvision's Mask R-CNN as the reference."""

from __future__ import annotations


def _rcnn():
    from course_lib.detection import rcnn

    return rcnn.RCNN(), lambda m: rcnn.train_rcnn(m, rcnn.SHIPPED)


def _yolo():
    from course_lib.detection import yolo, yolo_train

    return yolo.YOLOv1(), lambda m: yolo_train.train_yolo(m, yolo_train.SHIPPED)


def _maskrcnn(variant: str):
    def make():
        from course_lib.detection import maskrcnn, maskrcnn_train

        model = (maskrcnn_train.build_torchvision_reference() if variant == "torchvision"
                 else maskrcnn.MaskRCNN(pooler="pool" if variant == "roipool" else "align"))
        return model, lambda m: maskrcnn_train.train_maskrcnn(m, maskrcnn_train.SHIPPED)
    return make


CHECKPOINTS = {
    "rcnn": _rcnn,
    "yolo_v1": _yolo,
    "maskrcnn": _maskrcnn("ours"),
    "maskrcnn_torchvision_ref": _maskrcnn("torchvision"),
    "maskrcnn_roipool": _maskrcnn("roipool"),
}
