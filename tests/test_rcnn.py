"""R-CNN pieces: warping, proposal labels, the loss, detection output."""

import pytest
import torch

from course_lib.detection.boxes import decode
from course_lib.detection.rcnn import RCNN, detect, label_proposals, rcnn_loss, train_step, warp


def test_warp_of_the_whole_image_is_the_identity():
    image = torch.rand(1, 28, 28)
    out = warp(image, torch.tensor([[0.0, 0.0, 28.0, 28.0]]), size=28, context=0.0)
    assert torch.allclose(out[0], image, atol=1e-5)


def test_warp_crops_and_stretches():
    image = torch.zeros(1, 64, 64)
    image[:, 10:20, 30:50] = 1.0                     # a 10 x 20 bright rectangle
    out = warp(image, torch.tensor([[30.0, 10.0, 50.0, 20.0]]), size=28, context=0.0)
    assert out.shape == (1, 1, 28, 28)
    assert out[0, 0, 2:-2, 2:-2].min() > 0.99       # the crop is filled by the rectangle (warped to square)
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        warp(image, torch.zeros(3, 5))


def test_label_proposals():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 12.0], [20.0, 20.0, 30.0, 30.0],
                              [50.0, 50.0, 60.0, 60.0]])
    labels, deltas, reg = label_proposals(proposals, gt, torch.tensor([3, 7]))
    assert labels.tolist() == [3, 3, 0, 0]          # IoU 1, 0.83, 0.25, 0
    assert reg.tolist() == [True, True, False, False]
    assert torch.allclose(decode(proposals[:2], deltas[:2]), gt[[0, 0]], atol=1e-4)


def test_loss_goes_down_and_detect_format():
    torch.manual_seed(0)
    model = RCNN()
    crops, labels = torch.rand(32, 1, 28, 28), torch.randint(0, 11, (32,))
    deltas, reg = torch.randn(32, 4) * 0.1, torch.rand(32) > 0.5
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = [float(train_step(model, opt, crops, labels, deltas, reg)["total"]) for _ in range(12)]
    assert losses[-1] < losses[0] - 0.2
    logits, pred = model(crops)
    assert logits.shape == (32, 11) and pred.shape == (32, 10, 4)
    assert set(rcnn_loss(logits, pred, labels, deltas, reg)) == {"cls", "box", "total"}
    image = torch.rand(1, 64, 64)
    out = detect(model, image, proposals=torch.tensor([[5.0, 5.0, 30.0, 30.0], [30.0, 30.0, 60.0, 50.0]]))
    assert set(out) == {"boxes", "scores", "labels"}
    assert out["boxes"].shape[1] == 4 and len(out["scores"]) == len(out["labels"]) <= 20
    assert ((out["labels"] >= 1) & (out["labels"] <= 10)).all()
    assert (out["boxes"][:, :2] >= 0).all() and (out["boxes"][:, 2:] <= 64).all()
