"""Chapter 05's shipped checkpoints (``python -m course_lib checkpoints``): our Mask R-CNN, its RoIPool
ablation and torchvision's Mask R-CNN as the reference."""

from __future__ import annotations


def _maskrcnn(variant: str):
    def make():
        from course_lib.maskrcnn import model, train

        net = (train.build_torchvision_reference() if variant == "torchvision"
               else model.MaskRCNN(pooler="pool" if variant == "roipool" else "align"))
        return net, lambda m: train.train_maskrcnn(m, train.SHIPPED)
    return make


CHECKPOINTS = {
    "maskrcnn": _maskrcnn("ours"),
    "maskrcnn_torchvision_ref": _maskrcnn("torchvision"),
    "maskrcnn_roipool": _maskrcnn("roipool"),
}
