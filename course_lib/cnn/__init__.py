"""Chapter 01: CNN architectures 2012-2016, scaled for Fashion-MNIST (28x28x1).

``alexnet`` (2012), ``inception`` (2014), ``resnet`` (2015), ``densenet`` (2016): one idea per file.
Every model maps (B, 1, 28, 28) -> logits (B, 10) and exposes ``features(x)``, its penultimate layer.
ReLUs are ``nn.ReLU`` modules, never reused, so chapter 02's hooks see each one.
"""

from course_lib.cnn.alexnet import AlexNet
from course_lib.cnn.densenet import DenseNet
from course_lib.cnn.inception import GoogLeNet, InceptionModule
from course_lib.cnn.resnet import PlainBlock, ResidualBlock, ResNet

ARCHITECTURES = {"alexnet": AlexNet, "googlenet": GoogLeNet, "resnet": ResNet, "densenet": DenseNet}


def build(arch: str, **kwargs):
    """A fresh model by name: one of ``ARCHITECTURES``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
