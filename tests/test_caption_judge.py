"""Chapter 15's caption judge: registered for `python -m course_lib checkpoints`, trained on captioned images,
measured on captioned test images split by size."""

from __future__ import annotations

import torch

from course_lib.cnn import build
from course_lib.text import shipped


def test_caption_judge_is_registered():
    from course_lib import shipping

    model, train = shipping.registry()["caption_judge"]()
    assert callable(train) and sum(p.numel() for p in model.parameters()) > 0


def test_a_short_training_reports_its_accuracies_by_size():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build("resnet")
    out = shipped.train_caption_judge(model, shipped.CaptionJudgeConfig(n_train=512, epochs=1, batch_size=64),
                                      progress=False, n_test=200)
    assert set(out) == {"epochs", "n_train", "seconds", "final_train_loss", "test_acc_200", "test_acc_small",
                        "test_acc_large"}
    assert all(0 <= out[k] <= 1 for k in ("test_acc_200", "test_acc_small", "test_acc_large"))
    assert out["n_train"] == 512 and out["final_train_loss"] > 0
