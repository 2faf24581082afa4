"""Chapter 05, Mask R-CNN (He, Gkioxari, Dollar & Girshick 2017): a region proposal network, RoIAlign and a
mask head that outputs a binary mask per object, on chapter 03's boxes and NMS (``course_lib.detection``).

- ``roi``      RoIAlign (bilinear sampling, point by point and as matrix products) and RoIPool
- ``model``    backbone, RPN (torchvision's plumbing), box head, mask head, mask targets and loss
- ``train``    training, evaluation and loading; torchvision's MaskRCNN built alike, as the reference
- ``masks``    mask IoU and mask AP (= pycocotools / torchmetrics "segm")
- ``checks``   answers to notebook 05's exercises; ``config``: its sizes per profile; ``shipped``: its checkpoints

Tested against torchvision.ops.roi_align / roi_pool and torchmetrics in tests/test_roi.py and tests/test_maskrcnn.py.
"""
