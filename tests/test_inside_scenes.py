"""Chapter 02's single-item scenes and the two localisation models' checkpoint plumbing."""

import pytest
import torch

from course_lib import checkpoints
from course_lib.inside import scenes
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
    assert 0 <= regressor.checkpoint_entry["metrics"]["test_mean_iou"] <= 1
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
