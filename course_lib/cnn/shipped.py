"""Chapter 01's shipped checkpoints (``python -m course_lib checkpoints``): the judge and the architectures."""

from __future__ import annotations

from course_lib import checkpoints


def _classifier(name: str):
    def make():
        from course_lib.cnn import classifier

        return classifier.build_classifier(name), lambda m: classifier.train_classifier(
            m, classifier.SHIPPED[name], state=checkpoints.state_path(name))
    return make


CHECKPOINTS = {name: _classifier(name) for name in ("fmnist_classifier", "fmnist_alexnet", "fmnist_alexnet15",
                                                    "fmnist_googlenet", "fmnist_densenet")}
