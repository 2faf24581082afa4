"""Chapter 05: mask targets, the mask loss, pasting, mask AP and the assembled Mask R-CNN, against
torchvision's Mask R-CNN pieces, pycocotools and torchmetrics."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tv_ops
from tolerance import scaled_atol
from torchvision.models.detection.roi_heads import maskrcnn_loss, paste_masks_in_image, project_masks_on_boxes

from course_lib.data import fashion_scenes
from course_lib.maskrcnn import model as mr
from course_lib.maskrcnn import train as mt
from course_lib.maskrcnn import checks as seg_checks
from course_lib.detection.metrics import mean_average_precision
from course_lib.maskrcnn.masks import mask_average_precision, mask_iou, torchmetrics_map


@pytest.fixture(scope="module")
def scenes():
    return fashion_scenes(12, seed=3, split="test")


# ----------------------------------------------------------------------------------------- mask targets


def test_mask_targets_crop_and_resize_the_matched_mask():
    gt = torch.zeros(2, 64, 64, dtype=torch.uint8)
    gt[0, 10:30, 20:40] = 1                                            # a 20 x 20 square
    gt[1, 40:60, 0:10] = 1
    rois = torch.tensor([[20.0, 10.0, 40.0, 30.0], [20.0, 10.0, 60.0, 30.0], [0.0, 40.0, 10.0, 60.0]])
    targets = mr.mask_targets(gt, rois, torch.tensor([0, 0, 1]), size=28)
    assert targets.shape == (3, 28, 28) and set(targets.unique().tolist()) <= {0.0, 1.0}
    assert targets[0].all() and targets[2].all()                       # the RoI is the object's box: all object
    assert targets[1, :, :14].all() and not targets[1, :, 14:].any()   # twice as wide: the left half only


def test_mask_targets_equal_thresholded_roi_align_of_the_gt_masks(scenes):
    for image, t in scenes:
        G = len(t["boxes"])
        g = torch.Generator().manual_seed(G)
        rois = t["boxes"][torch.arange(G).repeat(3)] + torch.randn(3 * G, 4, generator=g) * 2   # jittered positives
        matched = torch.arange(G).repeat(3)
        rows = torch.cat([matched[:, None].double(), rois.double()], 1)
        value = tv_ops.roi_align(t["masks"][:, None].double(), rows, 28, 1.0, -1, aligned=True)[:, 0]  # (3G, 28, 28)
        got = mr.mask_targets(t["masks"], rois, matched)
        assert got.dtype == torch.float32 and set(got.unique().tolist()) <= {0.0, 1.0}
        # the float32 kernel and the float64 oracle may threshold a bin whose mean of 0 / 1 pixels is 0.5 up to
        # rounding either way: compare the others (the values are means of numbers <= 1)
        tie = (value - 0.5).abs() <= scaled_atol(1.0, torch.float32)
        assert torch.equal(got.bool()[~tie], (value >= 0.5)[~tie])


# -------------------------------------------------------------------------------------------- mask loss


def test_mask_loss_is_the_own_class_bce_and_equals_torchvisions():
    g = torch.Generator().manual_seed(0)
    P, C, M = 6, mr.NUM_CLASSES, 28
    logits = torch.randn(P, C, M, M, generator=g, requires_grad=True)
    labels = torch.randint(1, C + 1, (P,), generator=g)
    targets = (torch.rand(P, M, M, generator=g) > 0.5).float()
    loss = mr.mask_loss(logits, labels, targets)
    by_hand = torch.stack([F.binary_cross_entropy_with_logits(logits[p, labels[p] - 1], targets[p]) for p in range(P)])
    torch.testing.assert_close(loss, by_hand.mean())
    grad, = torch.autograd.grad(loss, logits)
    own = torch.zeros(P, C, dtype=torch.bool)
    own[torch.arange(P), labels - 1] = True
    assert (grad[~own] == 0).all() and (grad[own].abs().sum((1, 2)) > 0).all()   # other classes: no gradient

    # torchvision's loss builds its own (soft, unaligned) targets and reads channel = label (0 = background)
    gt_masks = [(torch.rand(3, 64, 64, generator=g) > 0.6).to(torch.uint8)]
    proposals = [torch.tensor([[2.0, 3, 30, 40], [10, 10, 50, 60], [0, 0, 63, 63], [5, 20, 25, 28]])]
    matched, gt_labels = [torch.tensor([0, 2, 1, 2])], [torch.tensor([4, 9, 1])]
    theirs_logits = torch.randn(4, C + 1, M, M, generator=g)
    theirs = maskrcnn_loss(theirs_logits, proposals, gt_masks, gt_labels, matched)
    soft_targets = project_masks_on_boxes(gt_masks[0], proposals[0], matched[0], M)
    mine = mr.mask_loss(theirs_logits[:, 1:], gt_labels[0][matched[0]], soft_targets)
    torch.testing.assert_close(mine, theirs)
    empty = mr.mask_loss(torch.zeros(0, C, M, M, requires_grad=True), torch.zeros(0, dtype=torch.long), torch.zeros(0, M, M))
    assert empty.item() == 0 and empty.requires_grad
    with pytest.raises(ValueError, match=r"\(P, C, M, M\)"):
        mr.mask_loss(logits[0], labels, targets)


# ---------------------------------------------------------------------------------------------- pasting


def test_paste_inverts_mask_targets_better_than_torchvisions_integer_paste(scenes):
    """A 28 x 28 target pasted back into its box gives back the ground-truth mask; torchvision's paste rounds the
    box to whole pixels (and adds one), so its round trip is worse."""
    ours, theirs = [], []
    for image, t in scenes:
        masks = t["masks"].bool()
        small = mr.mask_targets(t["masks"], t["boxes"], torch.arange(len(masks)))       # (G, 28, 28)
        pasted = mr.paste_masks(small, t["boxes"], 64, 64)                               # (G, 64, 64)
        assert pasted.shape == masks.shape and pasted.min() >= 0 and pasted.max() <= 1
        ours.append(mask_iou(pasted > 0.5, masks).diagonal())
        tv = paste_masks_in_image(small[:, None], t["boxes"], (64, 64))[:, 0]
        theirs.append(mask_iou(tv > 0.5, masks).diagonal())
    ours, theirs = torch.cat(ours), torch.cat(theirs)
    assert ours.min() > 0.98, ours.min()
    assert ours.mean() > theirs.mean() + 0.02
    with pytest.raises(ValueError, match=r"\(D, M, M\)"):
        mr.paste_masks(torch.zeros(2, 28, 28), torch.zeros(3, 4), 64, 64)


# ---------------------------------------------------------------------------------------------- mask AP


def random_instances(seed: int, n_images: int = 6, n_classes: int = 3, size: int = 24, empty_image: bool = False):
    """Images with 1-3 ground-truth masks (ragged rectangles) and 0-7 detections, most a noisy copy of a
    ground truth (so matches happen at various IoUs), scores possibly tied."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(n_images):
        G = 0 if (empty_image and i == 0) else int(torch.randint(1, 4, (1,), generator=g))
        D = int(torch.randint(0, 8, (1,), generator=g))
        gt = torch.zeros(G, size, size, dtype=torch.bool)
        for k in range(G):
            x, y = torch.randint(0, size - 6, (2,), generator=g).tolist()
            w, h = torch.randint(3, 10, (2,), generator=g).tolist()
            gt[k, y:y + h, x:x + w] = torch.rand(min(h, size - y), min(w, size - x), generator=g) > 0.15
        source = gt[torch.randint(0, G, (D,), generator=g)] if G else torch.rand(D, size, size, generator=g) > 0.9
        noisy = torch.where(torch.rand(D, size, size, generator=g) < 0.04 * (seed % 3), ~source, source)
        probs = noisy.float() * 0.8 + 0.1                                  # probabilities, thresholded at 0.5
        preds.append({"masks": probs, "scores": (torch.rand(D, generator=g) * 4).round() / 4 if seed % 2 else
                      torch.rand(D, generator=g), "labels": torch.randint(0, n_classes, (D,), generator=g)})
        targets.append({"masks": gt.to(torch.uint8), "labels": torch.randint(0, n_classes, (G,), generator=g)})
    return preds, targets


def test_mask_iou_matches_pycocotools():
    from pycocotools import mask as mask_utils

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(5, 20, 30, generator=g) > 0.6, torch.rand(4, 20, 30, generator=g) > 0.3
    b[0] = a[1]
    rle = [mask_utils.encode(np.asfortranarray(m.permute(1, 2, 0).numpy().astype(np.uint8))) for m in (a, b)]
    expected = mask_utils.iou(rle[0], rle[1], [0] * 4)
    np.testing.assert_allclose(mask_iou(a, b).numpy(), expected, rtol=1e-12)
    assert mask_iou(a, b)[1, 0] == 1
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        mask_iou(a[0], b)


@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.75])
@pytest.mark.parametrize("seed", range(5))
def test_mask_ap_matches_torchmetrics_segm(seed, iou_threshold):
    preds, targets = random_instances(seed)
    mine = mask_average_precision(preds, targets, iou_threshold)
    assert mine == pytest.approx(torchmetrics_map(preds, targets, "segm", iou_threshold), abs=1e-6)
    assert 0 <= mine <= 1


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_coco_summary_of_masks_matches_torchmetrics_at_cocos_ten_thresholds(seed):
    """AP[.5:.95], AP50 and AP75 of masks against pycocotools (through torchmetrics) run once over its default
    thresholds 0.50:0.05:0.95. (Seeds with noisy masks, so that the strict thresholds lose AP.)"""
    from course_lib.detection.metrics import coco_summary
    from course_lib.maskrcnn.masks import mask_average_precisions

    preds, targets = random_instances(seed)
    aps = mask_average_precisions(preds, targets)                       # mask IoUs once, ten thresholds
    for t, ap in aps.items():
        assert ap == pytest.approx(mask_average_precision(preds, targets, t), abs=1e-12), t
    mine = coco_summary(aps)
    reference = torchmetrics_map(preds, targets, "segm", None)
    assert set(mine) == set(reference) == {"AP", "AP50", "AP75"}
    for key in mine:
        assert mine[key] == pytest.approx(reference[key], abs=1e-6), key
    assert mine["AP"] < mine["AP50"] - 0.01, "noisy masks should lose AP at the strict thresholds"


def test_mask_ap_counts_detections_on_images_without_ground_truth_as_pycocotools_does():
    """torchmetrics' segm mode skips an image without ground-truth masks (its detections vanish); COCOeval counts
    them as false positives, as course_lib's box mAP and torchmetrics' bbox mode do. We follow pycocotools."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    preds, targets = random_instances(3, empty_image=True)
    assert len(targets[0]["labels"]) == 0 and len(preds[0]["labels"]) > 0

    def rle(m):
        r = mask_utils.encode(np.asfortranarray(m.numpy().astype(np.uint8)))
        return {"size": r["size"], "counts": r["counts"].decode()}

    gts = [{"image_id": i, "category_id": int(c), "segmentation": rle(m), "iscrowd": 0, "area": float(m.sum())}
           for i, t in enumerate(targets) for m, c in zip(t["masks"], t["labels"])]
    dts = [{"image_id": i, "category_id": int(c), "segmentation": rle(m > 0.5), "score": float(s)}
           for i, p in enumerate(preds) for m, c, s in zip(p["masks"], p["labels"], p["scores"])]
    for k, annotation in enumerate(gts):
        annotation["id"] = k + 1                                        # COCO ids start at 1
    coco = COCO()
    coco.dataset = {"images": [{"id": i, "height": 24, "width": 24} for i in range(len(preds))], "annotations": gts,
                    "categories": [{"id": c} for c in range(3)]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dts), "segm")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, -1]              # (101 recall levels, classes), maxDets 100
    expected = float(np.mean([precision[:, k].mean() for k in range(precision.shape[1]) if (precision[:, k] > -1).all()]))
    assert mask_average_precision(preds, targets, 0.5) == pytest.approx(expected, abs=1e-6)


def test_mask_ap_edge_cases():
    gt = torch.zeros(2, 16, 16, dtype=torch.uint8)
    gt[0, 2:8, 2:8], gt[1, 9:15, 9:15] = 1, 1
    target = {"masks": gt, "labels": torch.tensor([1, 2])}
    perfect = {"masks": gt.float(), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 2])}
    swapped = {"masks": gt.float(), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([2, 1])}
    empty = {"masks": torch.zeros(0, 16, 16), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    assert mask_average_precision([perfect], [target]) == 1.0
    assert mask_average_precision([swapped], [target]) == 0.0
    assert mask_average_precision([empty], [target]) == 0.0
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        mask_average_precision([{"masks": gt[0], "scores": torch.ones(1), "labels": torch.ones(1)}], [target])


# ------------------------------------------------------------------------------------------- the model


def test_model_shapes_stages_and_eval_format(scenes):
    torch.manual_seed(0)
    model = mr.MaskRCNN().eval()
    images = scenes.images[:2]
    with torch.no_grad():
        features = model.backbone(images)
        assert features.shape == (2, 64, 16, 16)                       # stride 4
        anchors = model.anchors(images, features)
        assert len(anchors) == 2 and anchors[0].shape == (16 * 16 * 9, 4)
        sides = (anchors[0][:, 2:] - anchors[0][:, :2]).unique(dim=0)
        assert len(sides) == 9 and sides.min() >= 11 and sides.max() <= 46  # 16-32 px at 1:2, 1:1, 2:1
        proposals, losses = model.propose(images, features)
        assert losses == {} and all(len(p) <= mr.RPN["post_nms_top_n_test"] for p in proposals)
        out = model(images)
    assert len(out) == 2
    for d in out:
        D = len(d["boxes"])
        assert d["boxes"].shape == (D, 4) and d["scores"].shape == d["labels"].shape == (D,)
        assert d["masks"].shape == (D, 1, 64, 64) and (d["masks"] >= 0).all() and (d["masks"] <= 1).all()
        assert ((d["labels"] >= 1) & (d["labels"] <= 10)).all()
    logits = model.mask_head(torch.zeros(3, 64, 14, 14))
    assert logits.shape == (3, mr.NUM_CLASSES, 28, 28)


def test_one_training_step_makes_every_loss_go_down(scenes):
    torch.manual_seed(0)
    model = mr.MaskRCNN()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    images, targets = scenes.images[:4], [{k: t[k] for k in ("boxes", "labels", "masks")} for t in scenes.targets[:4]]
    history = [mt.train_step(model, optimizer, images, targets) for _ in range(12)]
    assert set(history[0]) == {"objectness", "rpn_box_reg", "classifier", "box_reg", "mask", "total"}
    assert history[-1]["total"] < history[0]["total"] - 0.5
    assert history[-1]["mask"] < history[0]["mask"]
    with pytest.raises(ValueError, match="targets"):
        model.train()(images)


def test_torchvision_reference_has_our_backbone_and_sizes(scenes):
    torch.manual_seed(0)
    ref = mt.build_torchvision_reference()
    ours = mr.MaskRCNN()
    assert isinstance(ref.backbone, mr.Backbone)
    assert [p.shape for p in ref.backbone.parameters()] == [p.shape for p in ours.backbone.parameters()]
    assert ref.rpn._pre_nms_top_n == {"training": 600, "testing": 300}
    assert ref.roi_heads.fg_bg_sampler.batch_size_per_image == mr.ROI["batch_size_per_image"]
    n_ref, n_ours = (sum(p.numel() for p in m.parameters()) for m in (ref, ours))
    assert abs(n_ref - n_ours) < 100                                    # the background mask channel only
    losses = ref(list(scenes.images[:2]), [{k: t[k] for k in ("boxes", "labels", "masks")} for t in scenes.targets[:2]])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}


def test_hflip_mirrors_images_boxes_and_masks(scenes):
    g = torch.Generator().manual_seed(0)
    images, targets = mt.hflip(scenes.images[:6], scenes.targets[:6], g, p=1.0)
    torch.testing.assert_close(images, scenes.images[:6].flip(-1))
    for t in targets:
        torch.testing.assert_close(t["boxes"], tv_ops.masks_to_boxes(t["masks"]) + torch.tensor([0, 0, 1, 1.0]))


def test_evaluate_records_both_aps_on_a_perfect_predictor(monkeypatch):
    test = fashion_scenes(5, seed=1, split="test")

    def oracle(model, images, batch_size=32):
        return [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.linspace(1, 0.5, len(t["labels"])),
                 "masks": t["masks"].float()} for t in test.targets]

    monkeypatch.setattr(mt, "predict", oracle)
    scores = mt.evaluate(None, 5)
    assert scores == {"mask_map50": 1.0, "box_map50": 1.0}
    preds = oracle(None, None)
    assert torchmetrics_map(preds, test.targets, "segm") == pytest.approx(1.0)
    assert mean_average_precision(preds, test.targets) == 1.0


# ---------------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize("name", [n for n in dir(seg_checks) if n.startswith("check_")])
def test_checks_accept_the_computed_answer_and_reject_others(name, capsys):
    check = getattr(seg_checks, name)
    expected = getattr(seg_checks, name.replace("check_", "expected_"))()
    assert bool(check(expected)) is True                               # a bool or a course_lib.checks.Verdict
    wrong = [v + 1 for v in expected] if isinstance(expected, (tuple, list)) else expected + 1
    assert bool(check(wrong)) is False
    assert bool(check(None)) is False
    assert "Not answered yet" in capsys.readouterr().out


def test_roipool_variant_pools_with_roi_pool_and_rejects_unknown_poolers():
    """The ablation's model: MaskRCNN(pooler="pool") pools with RoIPool (torchvision's kernel, checked here
    against course_lib's loop), the default with RoIAlign; any other name is refused."""
    from course_lib.maskrcnn.model import STRIDE, MaskRCNN
    from course_lib.maskrcnn.roi import roi_align, roi_pool

    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 64, 16, 16, generator=g)
    corners = torch.rand(2, 5, 2, generator=g) * 40
    boxes = [torch.cat([c, c + 4 + torch.rand(5, 2, generator=g) * 20], dim=1) for c in corners]   # (5, 4) each
    pooled = MaskRCNN(pooler="pool").pool(features, boxes, 7)
    torch.testing.assert_close(pooled, roi_pool(features, boxes, 7, 1 / STRIDE), rtol=0, atol=0)
    aligned = MaskRCNN().pool(features, boxes, 7)
    torch.testing.assert_close(aligned, roi_align(features, boxes, 7, 1 / STRIDE, sampling_ratio=2))
    assert not torch.allclose(pooled, aligned)
    with pytest.raises(ValueError, match="'align'.*'pool'"):
        MaskRCNN(pooler="warp")
