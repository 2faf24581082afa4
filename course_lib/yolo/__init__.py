"""Chapter 04, YOLO v1 (Redmon, Divvala, Girshick & Farhadi 2016, "You Only Look Once: Unified, Real-Time Object
Detection"): no proposals, one network that regresses boxes and class probabilities on an S x S grid, scored and
pruned with chapter 03's IoU, NMS and mAP (``course_lib.detection``).

- ``model``    the network, target encoding, the responsible predictor, the loss of Eq. 3 term by term, decoding
- ``train``    training, detection and loading of the shipped ``yolo_v1``
- ``checks``   answers to notebook 04's exercises (grid cell, output count, the loss written out)
- ``config``   notebook 04's sizes per profile; ``shipped``: its checkpoint declaration

The loss and decoding are tested in tests/test_yolo.py, the exercises in tests/test_exercises_03_04.py.
"""
