"""course_lib.data: Fashion-MNIST from the offline sources in order, and the generated Fashion scenes."""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path

import pytest
import torch

import course_lib.data as data
from course_lib.data import (
    CLASSES, FILES, NAMES, PLURALS, DataNotFoundError, ImageDataset, SceneConfig, caption, fashion_mnist,
    fashion_scenes,
)

COUNT_WORDS = {2: "two", 3: "three", 4: "four"}

# ---------------------------------------------------------------------------------------------
# helpers: tiny IDX files


def idx_bytes(array: torch.Tensor) -> bytes:
    """The IDX encoding of a uint8 tensor: magic 0x0000 08 <ndim>, big-endian dims, raw bytes."""
    assert array.dtype == torch.uint8
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.contiguous().numpy().tobytes()


def fake_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
    return images, labels


def write_idx(folder: Path, n_train: int = 5, n_test: int = 3, seed: int = 0, gz: bool = True) -> dict:
    """Write the four Fashion-MNIST IDX files into ``folder``; return what they hold."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test = fake_split(n_train, seed), fake_split(n_test, seed + 1)
    contents = dict(zip(FILES, (train[0], train[1], test[0], test[1])))
    for name, array in contents.items():
        raw = idx_bytes(array)
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(raw)
        else:
            (folder / name).write_bytes(raw)
    return {"train": train, "test": test}


def assert_same(ds: ImageDataset, expected: tuple[torch.Tensor, torch.Tensor]):
    images, labels = expected
    assert ds.images.shape == (len(images), 1, 28, 28)
    torch.testing.assert_close(ds.images, images.unsqueeze(1).float() / 255, rtol=0, atol=1e-7)
    assert torch.equal(ds.labels, labels.long())


@pytest.fixture
def no_sources(monkeypatch, tmp_path):
    """Nothing anywhere: no $COURSE_DATA, an empty data/ of the checkout, no Debian package."""
    monkeypatch.delenv("COURSE_DATA", raising=False)
    root = tmp_path / "checkout"
    (root / "data").mkdir(parents=True)
    monkeypatch.setattr(data, "repo_root", lambda: root)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-such-debian-dir")
    return root


# ---------------------------------------------------------------------------------------------
# (a) the real data


@pytest.fixture(scope="session")
def real():
    """Both real splits, loaded once per session into their own cache (skipped when absent)."""
    if not data.DEBIAN_DIR.is_dir() and not os.environ.get("COURSE_DATA"):
        pytest.skip(f"real Fashion-MNIST absent: {data.DEBIAN_DIR} missing (apt-get install "
                    "dataset-fashion-mnist) and $COURSE_DATA unset")
    with pytest.MonkeyPatch.context() as mp:
        import tempfile

        with tempfile.TemporaryDirectory() as cache:
            mp.setenv("COURSE_CACHE", cache)
            fashion_mnist.cache_clear()
            splits = {split: fashion_mnist(split) for split in ("train", "test")}
            fashion_mnist.cache_clear()
    return splits


@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_fashion_mnist(real, split, n):
    ds = real[split]
    assert len(ds) == n
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int)
    assert ds.images.shape == (n, 1, 28, 28)
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    assert float(ds.images.max()) == 1.0  # scaled by 255, not by something else
    assert ds.labels.dtype == torch.int64
    # Fashion-MNIST is balanced: 6,000 train and 1,000 test images per class, all ten classes
    assert torch.equal(torch.bincount(ds.labels, minlength=10), torch.full((10,), n // 10))
    assert ds.classes == CLASSES


def test_real_subset_is_seeded(real):
    a, b, c = real["test"].subset(50, seed=1), real["test"].subset(50, seed=1), real["test"].subset(50, seed=2)
    assert len(a) == 50
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert real["test"].subset(None) is real["test"]


# ---------------------------------------------------------------------------------------------
# (b) source order, on tiny fake IDX files


@pytest.mark.parametrize("layout, gz", [(".", True), (".", False), ("fashion-mnist", True),
                                        ("FashionMNIST/raw", False), ("FashionMNIST/raw", True)])
def test_course_data_layouts(monkeypatch, tmp_path, layout, gz):
    base = tmp_path / "mine"
    expected = write_idx(base / layout, gz=gz)
    monkeypatch.setenv("COURSE_DATA", str(base))
    assert_same(fashion_mnist("train"), expected["train"])
    assert_same(fashion_mnist("test"), expected["test"])


def test_decoded_data_is_cached_and_read_without_torchvision(monkeypatch, tmp_path, fresh_cache):
    expected = write_idx(tmp_path / "mine", n_train=5, n_test=3, seed=0)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "mine"))
    assert_same(fashion_mnist("train"), expected["train"])  # decoded by torchvision, then cached
    fashion_mnist.cache_clear()
    monkeypatch.setitem(sys.modules, "torchvision", None)    # any import of torchvision now raises
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    assert_same(fashion_mnist("train"), expected["train"])
    with pytest.raises(ImportError):                         # the test split was never decoded: it needs torchvision
        fashion_mnist("test")


def test_changed_or_corrupt_files_are_decoded_again(monkeypatch, tmp_path, fresh_cache):
    mine = tmp_path / "mine"
    write_idx(mine, n_train=5, seed=0)
    monkeypatch.setenv("COURSE_DATA", str(mine))
    fashion_mnist("train")
    new = write_idx(mine, n_train=7, seed=1)                   # new files: the old decoded cache must not be used
    fashion_mnist.cache_clear()
    assert_same(fashion_mnist("train"), new["train"])
    cached = list(fresh_cache.glob("fashion-mnist/*/train.safetensors"))
    assert len(cached) == 2                                     # one per version of the files
    for path in cached:
        path.write_bytes(b"not a safetensors file")
    fashion_mnist.cache_clear()
    assert_same(fashion_mnist("train"), new["train"])


def test_course_data_wins_over_checkout_and_debian(monkeypatch, tmp_path):
    root = tmp_path / "checkout"
    write_idx(root / "data", n_train=4, n_test=2, seed=10)
    monkeypatch.setattr(data, "repo_root", lambda: root)
    mine = write_idx(tmp_path / "mine", n_train=5, n_test=3, seed=0)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "mine"))
    # the Debian folder (installed here) holds 60,000 images; the 5 fake ones must win
    assert_same(fashion_mnist("train"), mine["train"])
    assert_same(fashion_mnist("test"), mine["test"])


def test_checkout_data_wins_over_debian(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    root = tmp_path / "checkout"
    theirs = write_idx(root / "data", n_train=4, n_test=2, seed=10, gz=False)
    monkeypatch.setattr(data, "repo_root", lambda: root)
    assert_same(fashion_mnist("train"), theirs["train"])


def test_debian_folder_is_used_last(no_sources, monkeypatch, tmp_path):
    debian = write_idx(tmp_path / "debian", n_train=6, n_test=2, seed=3)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    assert_same(fashion_mnist("train"), debian["train"])


def test_incomplete_folder_is_skipped(no_sources, monkeypatch, tmp_path):
    mine = tmp_path / "mine"
    write_idx(mine)
    (mine / f"{FILES[3]}.gz").unlink()  # test labels missing
    monkeypatch.setenv("COURSE_DATA", str(mine))
    complete = write_idx(no_sources / "data", n_train=7, n_test=1, seed=4)
    assert_same(fashion_mnist("train"), complete["train"])


# ---------------------------------------------------------------------------------------------
# (c) nothing anywhere


def assert_names_remedies(message: str):
    assert "COURSE_DATA" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "network" in message and "torchvision" in message and "download" in message


def test_offline_and_nothing_found(no_sources, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as err:
        fashion_mnist("train")
    assert isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    assert_names_remedies(message)
    assert str(tmp_path / "no-such-debian-dir") in message  # it says where it looked
    assert str(no_sources / "data") in message


def test_offline_message_lists_course_data_folder(no_sources, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataNotFoundError, match="COURSE_DATA") as err:
        fashion_mnist("test")
    assert str(tmp_path / "empty") in str(err.value)


def test_failed_download_gives_the_same_error(no_sources, monkeypatch):
    from torchvision.datasets import FashionMNIST

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    calls = []

    def no_network(self):
        calls.append(self.root)
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(FashionMNIST, "download", no_network)
    with pytest.raises(DataNotFoundError) as err:
        fashion_mnist("train")
    assert len(calls) == 1  # it did try the download
    assert_names_remedies(str(err.value))
    assert "network unreachable" in str(err.value)
    assert isinstance(err.value.__cause__, RuntimeError)


# ---------------------------------------------------------------------------------------------
# (d) bad split


@pytest.mark.parametrize("split", ["val", "Train", "", "t10k"])
def test_bad_split(split):
    with pytest.raises(ValueError, match="split"):
        fashion_mnist(split)


def test_image_dataset_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ImageDataset(torch.rand(4, 28, 28), torch.zeros(4))
    with pytest.raises(ValueError):
        ImageDataset(torch.rand(4, 1, 28, 28), torch.zeros(3))


# ---------------------------------------------------------------------------------------------
# (e) Fashion scenes


def blob_source(n: int = 40, seed: int = 0) -> ImageDataset:
    """Items that look like clothes to the scene maker: a bright random rectangle on black, labels 0..9."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(12, 27, (2,), generator=g))
        y, x = (int(v) for v in torch.randint(0, 28 - 12, (2,), generator=g))
        patch = images[i, 0, y:y + h, x:x + w]
        patch.copy_(0.5 + 0.5 * torch.rand(patch.shape, generator=g))
    return ImageDataset(images, torch.arange(n) % 10)


def mask_bbox(mask: torch.Tensor) -> list[float]:
    ys, xs = mask.nonzero(as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def check_scene(image: torch.Tensor, target: dict, size: int):
    boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
    k = len(labels)
    assert image.shape == (1, size, size)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert 1 <= k <= 4
    assert boxes.shape == (k, 4) and boxes.dtype == torch.float32
    assert labels.dtype == torch.int64 and masks.shape == (k, size, size) and masks.dtype == torch.uint8
    assert bool(((labels >= 1) & (labels <= 10)).all())
    assert set(masks.unique().tolist()) <= {0, 1}
    assert int(masks.sum(0).max()) <= 1, "instance masks overlap"
    for box, mask in zip(boxes, masks):
        assert mask.any()
        x0, y0, x1, y1 = box.tolist()
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        assert box.tolist() == mask_bbox(mask)
    check_caption(target["caption"], [int(c) - 1 for c in labels])


def check_caption(text: str, classes: list[int]):
    for c in set(classes):
        count = classes.count(c)
        if count == 1:
            expected = "a pair of trousers" if NAMES[c] == "trousers" else NAMES[c]
        elif NAMES[c] == "trousers":
            expected = f"{COUNT_WORDS[count]} pairs of trousers"
        else:
            expected = f"{COUNT_WORDS[count]} {PLURALS[c]}"
        assert expected in text, (text, classes)
    parts = [p.strip() for chunk in text.split(", ") for p in chunk.split(" and ")]
    assert len(parts) == len(set(classes)), (text, classes)  # one phrase per class, whole phrases only
    for c in set(classes):
        phrase = ("a pair of trousers" if NAMES[c] == "trousers" else
                  ("an " if NAMES[c][0] in "aeiou" else "a ") + NAMES[c]) if classes.count(c) == 1 else None
        assert phrase is None or phrase in parts, (text, classes, phrase)


def test_scenes_targets_are_consistent():
    scenes = fashion_scenes(24, seed=0, source=blob_source())
    assert len(scenes) == 24 and scenes.images.shape == (24, 1, 64, 64)
    assert scenes.captions == [t["caption"] for t in scenes.targets]
    for image, target in scenes:
        check_scene(image, target, 64)
    counts = {len(t["labels"]) for t in scenes.targets}
    assert len(counts) > 1  # the number of items varies


def test_scenes_other_size_and_counts():
    cfg = SceneConfig(size=40, min_items=2, max_items=2)
    scenes = fashion_scenes(8, seed=3, cfg=cfg, source=blob_source())
    for image, target in scenes:
        check_scene(image, target, 40)


def test_scenes_are_seeded():
    src = blob_source()
    a, b = fashion_scenes(6, seed=7, source=src), fashion_scenes(6, seed=7, source=src)
    c = fashion_scenes(6, seed=8, source=src)
    assert torch.equal(a.images, b.images)
    for ta, tb in zip(a.targets, b.targets):
        assert torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
        assert torch.equal(ta["masks"], tb["masks"]) and ta["caption"] == tb["caption"]
    assert not torch.equal(a.images, c.images)


def test_scene_pixels_come_from_their_item():
    """With items that are all-white squares, every masked pixel is white and the rest is background."""
    src = ImageDataset(torch.ones(10, 1, 28, 28), torch.arange(10))
    scenes = fashion_scenes(10, seed=1, source=src)
    for image, target in scenes:
        masks = target["masks"].bool()
        inside = masks.any(0)
        torch.testing.assert_close(image[0][inside], torch.ones(int(inside.sum())), atol=1e-4, rtol=0)
        assert float(image[0][~inside].max()) < 0.5  # the canvas stays darker than the items
        sides = target["boxes"][:, 2:] - target["boxes"][:, :2]
        assert float(sides.max()) <= 0.55 * 64  # item sides follow SceneConfig.scale = (0.25, 0.55)
        square = sides[:, 0] == sides[:, 1]  # the topmost item is whole: a square of side 16..35
        assert bool((square & (sides[:, 0] >= int(0.25 * 64))).any())


def test_empty_request():
    scenes = fashion_scenes(0, source=blob_source())
    assert len(scenes) == 0


@pytest.mark.parametrize("n, cfg", [(-1, SceneConfig()), (2, SceneConfig(size=27)),
                                    (2, SceneConfig(min_items=3, max_items=2)),
                                    (2, SceneConfig(min_items=0)), (2, SceneConfig(max_items=5))])
def test_scene_bad_arguments(n, cfg):
    with pytest.raises(ValueError):
        fashion_scenes(n, cfg=cfg, source=blob_source(10))


def test_scenes_from_real_data(real, monkeypatch):
    scenes = fashion_scenes(16, seed=0, source=real["train"])
    for image, target in scenes:
        check_scene(image, target, 64)
    # without a source, the items come from the real split asked for (train by default)
    asked = []
    monkeypatch.setattr(data, "fashion_mnist", lambda split: asked.append(split) or real[split])
    assert torch.equal(fashion_scenes(3, seed=0).images, fashion_scenes(3, seed=0, source=real["train"]).images)
    assert torch.equal(fashion_scenes(3, seed=0, split="test").images,
                       fashion_scenes(3, seed=0, source=real["test"]).images)
    assert asked == ["train", "test"]


@pytest.mark.parametrize("labels, text", [
    ([8, 7, 7], "a bag and two sneakers"),
    ([9], "an ankle boot"),
    ([1], "a pair of trousers"),
    ([1, 1, 1], "three pairs of trousers"),
    ([0], "a t-shirt"),
    ([3, 3], "two dresses"),
    ([4, 2, 4, 5], "two coats, a pullover and a sandal"),
    ([9, 9, 9, 9], "four ankle boots"),
])
def test_caption(labels, text):
    assert caption(labels) == text


def test_course_data_in_a_folder_named_raw(monkeypatch, tmp_path):
    """Uncompressed files in some folder called raw (not FashionMNIST/raw) are copied, not misread."""
    expected = write_idx(tmp_path / "mydata" / "raw", gz=False)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "mydata" / "raw"))
    assert_same(fashion_mnist("train"), expected["train"])


def test_no_data_fails_before_any_training_starts(no_sources, monkeypatch):
    """A checkpoint that must be trained, with no dataset and no network: the data error comes first,
    before a model takes a single optimizer step (no half-trained state is left behind)."""
    from course_lib import checkpoints
    from course_lib import training as train
    from course_lib.cnn import classifier

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(checkpoints, "shipped_dir", lambda: None)  # nothing shipped either
    steps = []
    monkeypatch.setattr(train, "train_step", lambda *a: steps.append(1))
    with pytest.raises(DataNotFoundError) as err:
        classifier.load_classifier("cpu", "smoke")
    assert_names_remedies(str(err.value))
    assert not steps and not checkpoints.state_path(classifier.CHECKPOINT).exists()
