"""Chapter 03, object detection, and the kernels chapters 04-05 build on: a region-based detector, written out.

Girshick, Donahue, Darrell & Malik 2014, "Rich feature hierarchies for accurate object detection and semantic
segmentation" (R-CNN): propose ~2000 class-agnostic regions, classify each, refine its box by regression,
prune each class with non-maximum suppression. The proposals come from selective search (Uijlings, van de
Sande, Gevers & Smeulders 2013, "Selective Search for Object Recognition"). YOLO v1 (Redmon, Divvala, Girshick
& Farhadi 2016, "You Only Look Once: Unified, Real-Time Object Detection") drops the proposals and regresses
boxes on a grid, but is scored and pruned with the same IoU, NMS and mAP. Mask R-CNN (He, Gkioxari, Dollar &
Girshick 2017) adds a region proposal network, RoIAlign and a mask head that outputs a binary mask per object.

- ``boxes``      box_area, box_iou, nms, batched_nms; encode / decode, the box coding of R-CNN's regressor
- ``metrics``    COCO-style mean average precision, with the precision-recall curve built in the open
- ``proposals``  selective search: felzenszwalb superpixels grouped hierarchically
- ``rcnn``       warp proposals, classify (+ background), regress boxes, per-class NMS; training and loading
- ``checks``     answers to notebook 03's exercises; ``config``: its sizes per profile; ``shipped``: ``rcnn``

YOLO v1 (notebook 04) lives in ``course_lib.yolo``, Mask R-CNN with RoIAlign and mask AP (notebook 05) in
``course_lib.maskrcnn``; both import their boxes, NMS and mAP from here.

Every kernel is tested against a trusted implementation (torchvision.ops, torchvision's BoxCoder,
torchmetrics / pycocotools) in tests/test_detection_kernels.py and tests/test_rcnn.py.
"""

from course_lib.detection.boxes import batched_nms, box_area, box_iou, decode, encode, nms
from course_lib.detection.metrics import average_precision_101, mean_average_precision, precision_recall
from course_lib.detection.proposals import selective_search

__all__ = ["average_precision_101", "batched_nms", "box_area", "box_iou", "decode", "encode",
           "mean_average_precision", "nms", "precision_recall", "selective_search"]
