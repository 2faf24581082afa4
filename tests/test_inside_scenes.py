"""Chapter 02's single-item scenes, the two localisation models' checkpoint plumbing, and the shipped models
against trivial baselines."""

import pytest
import torch

from course_lib import checkpoints
from course_lib.inside import scenes
from course_lib.data import DataNotFoundError, fashion_mnist
from course_lib.detection.boxes import paired_iou
from course_lib.inside.localization import BoxRegressor


def test_single_item_scenes():
    images, labels, boxes = scenes.single_item_scenes(40, seed=3, split="test")
    assert images.shape == (40, 1, 64, 64) and labels.shape == (40,) and boxes.shape == (40, 4)
    assert labels.min() >= 0 and labels.max() <= 9
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    again = scenes.single_item_scenes.__wrapped__(40, seed=3, split="test")
    assert torch.equal(again[0], images) and torch.equal(again[2], boxes)


def test_scene_classifier_takes_64px_scenes():
    model = scenes.build_scene_classifier().eval()
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 10)


def test_loaders_train_and_cache_when_nothing_is_shipped(monkeypatch):
    monkeypatch.setattr(checkpoints, "shipped_dir", lambda: None)
    monkeypatch.setattr(scenes, "FALLBACK", {p: scenes.SceneTrainConfig(n_scenes=256, classifier_epochs=1,
                                                                       regressor_epochs=1, batch_size=64)
                                             for p in ("smoke", "cpu", "gpu")})
    regressor = scenes.load_box_regressor("cpu", profile="smoke")
    assert isinstance(regressor, BoxRegressor) and not regressor.training
    assert regressor.checkpoint_entry["source"] == str(checkpoints.cache_checkpoint_dir())
    # the recorded metric is this model's mean IoU on the 1000 held-out scenes, rounded to 4 decimals
    test_images, _, test_boxes = scenes.single_item_scenes(1000, seed=1, split="test")
    with torch.no_grad():
        iou = paired_iou(regressor(test_images), test_boxes).mean().item()
    assert regressor.checkpoint_entry["metrics"]["test_mean_iou"] == pytest.approx(iou, abs=5e-5)
    # the second load comes from the cache, with the same weights
    again = scenes.load_box_regressor("cpu", profile="smoke")
    for a, b in zip(regressor.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["scene_classifier", "scene_box_regressor", "fmnist_alexnet", "fmnist_classifier",
                                  "rcnn", "yolo_v1"])
def test_shipped_checkpoints_are_listed_with_metrics(name):
    manifest = checkpoints.read_manifest(checkpoints.shipped_dir())
    assert name in manifest, f"{name} is not shipped: run `make checkpoints`"
    entry = manifest[name]
    assert entry["sha256"] == checkpoints.sha256(checkpoints.shipped_dir() / entry["file"])
    assert entry["metrics"] and entry["seconds"] > 0


def test_shipped_checkpoints_stay_small():
    folder = checkpoints.shipped_dir()
    total = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert total <= 80 * 2**20, f"shipped checkpoints take {total / 2**20:.1f} MB (budget 80 MB)"


# ------------------------------------------------------------------------------- shipped models against baselines


@pytest.fixture
def held_out():
    """The first 200 of the 1000 held-out scenes of the manifest's metrics: images, labels 0..9, boxes."""
    try:
        fashion_mnist("test")
    except DataNotFoundError:
        pytest.skip("real Fashion-MNIST absent")
    return scenes.single_item_scenes(200, seed=1, split="test")


def _shipped(name: str, load):
    entry = checkpoints.read_manifest(checkpoints.shipped_dir()).get(name)
    assert entry, f"{name} is not shipped: run `make checkpoints`"         # (so no training starts below)
    model = load("cpu", profile="smoke")
    assert model.checkpoint_entry["origin"] == "shipped"
    return model, entry["metrics"]


def test_shipped_box_regressor_beats_boxes_that_ignore_the_image(held_out, one_thread):
    images, _, boxes = held_out
    model, metrics = _shipped("scene_box_regressor", scenes.load_box_regressor)
    with torch.no_grad():
        pred = model(images)                                               # (200, 4)
    g = torch.Generator().manual_seed(0)
    wh = (boxes[:, 2:] - boxes[:, :2]).mean(0)                             # (2,) mean size of the true boxes
    xy = torch.rand(len(boxes), 2, generator=g) * (64 - wh)
    baselines = {
        "mean true box (the best constant in L1, fitted on these scenes)": boxes.mean(0).expand_as(boxes),
        "centred box of the mean size": torch.cat([32 - wh / 2, 32 + wh / 2]).expand_as(boxes),
        "the model's box for the next scene": pred.roll(1, dims=0),
        "random box of the mean size": torch.cat([xy, xy + wh], 1),
    }
    scores = {name: paired_iou(b, boxes).mean().item() for name, b in baselines.items()}
    iou = paired_iou(pred, boxes).mean().item()
    print(f"scene_box_regressor mean IoU {iou:.4f}; baselines", {k: round(v, 4) for k, v in scores.items()})
    assert iou >= max(scores.values()) + 0.5, (iou, scores)
    # near the manifest's figure on all 1000 scenes (0.8643 on these 200 for 0.8699 on the 1000, when shipped)
    assert abs(iou - metrics["test_mean_iou"]) <= 0.03, (iou, metrics)


def test_shipped_scene_classifier_beats_the_majority_class(held_out, one_thread):
    images, labels, _ = held_out
    model, metrics = _shipped("scene_classifier", scenes.load_scene_classifier)
    with torch.no_grad():
        predicted = model(images).argmax(1)                                # (200,)
    accuracy = (predicted == labels).float().mean().item()
    majority = torch.bincount(labels, minlength=10).max().item() / len(labels)
    shuffled = (predicted.roll(1) == labels).float().mean().item()         # its answers for the wrong scenes
    print(f"scene_classifier accuracy {accuracy:.3f}; majority class {majority:.3f}, shuffled {shuffled:.3f}")
    assert accuracy >= max(majority, shuffled) + 0.4, (accuracy, majority, shuffled)
    # near the manifest's figure on all 1000 scenes (0.775 on these 200 for 0.817 on the 1000, when shipped)
    assert abs(accuracy - metrics["test_acc"]) <= 0.06, (accuracy, metrics)
