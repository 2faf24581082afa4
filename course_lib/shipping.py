"""``python -m course_lib checkpoints``: train the shipped checkpoints with one command.

Each entry of ``SHIPPED`` builds a model and says how to train it; the result goes to
``data/checkpoints/`` with its sha256, training seconds and metrics in the manifest. Chapters add theirs.
"""

from __future__ import annotations

import time
from typing import Callable

from torch import nn

from course_lib import checkpoints
from course_lib.utils import device, seed_everything


def _classifier(name: str) -> Callable[[], tuple[nn.Module, Callable[[nn.Module], dict]]]:
    def make():
        from course_lib.cnn import classifier

        return classifier.build_classifier(name), lambda m: classifier.train_classifier(
            m, classifier.SHIPPED[name], state=checkpoints.state_path(name))
    return make


def _scene_classifier():
    from course_lib.inside import scenes

    return scenes.build_scene_classifier(), lambda m: scenes.train_scene_classifier(m, scenes.SHIPPED)


def _scene_box_regressor():
    from course_lib.inside import scenes
    from course_lib.inside.localization import BoxRegressor

    return BoxRegressor(size=scenes.SIZE), lambda m: scenes.train_box_regressor(m, scenes.SHIPPED)


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


def _vae(name: str):
    def make():
        from course_lib.vae import vae

        return vae.build(name), lambda m: vae.train_model(m, vae.SHIPPED[name].train)
    return make


def _hvae():
    from course_lib.vae import hierarchical, vae

    return hierarchical.build_hvae(), lambda m: vae.train_model(m, hierarchical.SHIPPED)


def _vq(name: str):
    def make():
        from course_lib.vae import vq

        return vq.build_vqvae(), lambda m: vq.train_vqvae(m, vq.SHIPPED[name])
    return make


def _gan(name: str):
    def make():
        from course_lib.gans import shipped

        return shipped.build_generator(name), lambda m: shipped.train_shipped(m, name)
    return make


def _translation(name: str):
    def make():
        from course_lib.translation import shipped

        return shipped.build_translator(name), lambda m: shipped.train_shipped(m, name)
    return make


SHIPPED: dict[str, Callable[[], tuple[nn.Module, Callable[[nn.Module], dict]]]] = {
    "fmnist_classifier": _classifier("fmnist_classifier"),
    "fmnist_alexnet": _classifier("fmnist_alexnet"),
    "scene_classifier": _scene_classifier,
    "scene_box_regressor": _scene_box_regressor,
    "rcnn": _rcnn,
    "yolo_v1": _yolo,
    "maskrcnn": _maskrcnn("ours"),
    "maskrcnn_torchvision_ref": _maskrcnn("torchvision"),
    "maskrcnn_roipool": _maskrcnn("roipool"),
    "ae_latent2": _vae("ae_latent2"),
    "vae_latent2": _vae("vae_latent2"),
    "vae_latent16": _vae("vae_latent16"),
    "hvae_2level": _hvae,
    "vq_tokenizer": _vq("vq_tokenizer"),
    "vq_tokenizer_nofix": _vq("vq_tokenizer_nofix"),
    "gan_dcgan": _gan("gan_dcgan"),
    "gan_progan": _gan("gan_progan"),
    "gan_stylegan": _gan("gan_stylegan"),
    "p2p_l1only": _translation("p2p_l1only"),
    "p2p_lambda1": _translation("p2p_lambda1"),
    "p2p_lambda10": _translation("p2p_lambda10"),
    "p2p_lambda100": _translation("p2p_lambda100"),
    "munit_edges2items": _translation("munit_edges2items"),
}


def ship_checkpoints(names: list[str]) -> int:
    folder = checkpoints.shipped_dir()
    if folder is None:
        print("checkpoints are shipped from a course checkout (run this inside the repository)")
        return 2
    unknown = sorted(set(names) - set(SHIPPED))
    if unknown:
        print(f"unknown checkpoint(s) {unknown}; known: {sorted(SHIPPED)}")
        return 2
    for name in names or list(SHIPPED):
        seed_everything(0)
        model, train = SHIPPED[name]()
        model = model.to(device())
        start = time.perf_counter()
        metrics = train(model)
        seconds = time.perf_counter() - start
        profile = "gpu" if device().type == "cuda" else "cpu"
        path = checkpoints.save(name, model, folder, profile=profile, seconds=seconds, metrics=metrics)
        checkpoints.state_path(name).unlink(missing_ok=True)
        print(f"{name}: {metrics} in {seconds:.0f} s -> {path}")
    return 0
