"""Answers to notebook 11's exercises, computed with this chapter's kernels (never stored).

Write the kernel: the receptive field of a stack of convolutions (what "patch" means in PatchGAN, Isola et al.
2017, Sec. 3.2.2), checked against ``course_lib.translation.pix2pix.patch_receptive_field`` on seeded random
stacks and edge cases. Hand computation: the receptive field of the paper's default discriminator (five 4x4
convolutions with strides 2, 2, 2, 1, 1 -- the "70x70 PatchGAN"), checked exactly.
"""

from __future__ import annotations

import random

import torch

from course_lib.checks import Verdict, check_kernel, report
from course_lib.translation.pix2pix import patch_receptive_field

PAPER_PATCHGAN = [(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]    # C64-C128-C256-C512, then the 1-channel output conv


def receptive_field_cases(seed: int = 0) -> list[tuple[str, tuple[list[tuple[int, int]]]]]:
    """Seeded stacks ``[(kernel, stride), ...]`` from input to output, and the edge cases."""
    rng = random.Random(seed)
    cases = [("this notebook's PatchGAN: [(4, 2), (4, 2), (4, 1)]", ([(4, 2), (4, 2), (4, 1)],))]
    for i in range(4):
        layers = [(rng.choice((1, 2, 3, 4, 5, 7)), rng.choice((1, 1, 2))) for _ in range(rng.randint(2, 6))]
        cases.append((f"random stack {i + 1}: {layers}", (layers,)))
    cases += [
        ("edge: one 5x5 convolution, stride 1", ([(5, 1)],)),
        ("edge: strides first, then a 3x3 stride-1 conv: [(2, 2), (2, 2), (3, 1)]", ([(2, 2), (2, 2), (3, 1)],)),
        ("edge: a stride-1 conv, then strides: [(3, 1), (2, 2), (2, 2)]", ([(3, 1), (2, 2), (2, 2)],)),
        ("edge: an empty stack (the input pixel itself)", ([],)),
    ]
    return cases


def check_receptive_field_kernel(fn) -> Verdict:
    """``fn(layers) -> int``, the side of the input patch one output unit sees, against ``patch_receptive_field``."""
    def as_tensor(f):
        def call(layers):
            r = f(list(layers))
            return None if r is None else torch.tensor(float(r), dtype=torch.float64)
        return call

    return check_kernel(as_tensor(fn), as_tensor(patch_receptive_field), receptive_field_cases(), name="my_receptive_field",
                        reference_name="course_lib.translation.pix2pix.patch_receptive_field",
                        hint="start from one output unit (r = 1) and walk back towards the input, last layer first "
                             "(reversed(layers)): a k x k kernel with stride s turns r units into s * r + (k - s) "
                             "inputs. Summing the kernels ignores the strides; walking from the input end applies "
                             "each stride to the wrong layers.")


def check_paper_patchgan(answer) -> Verdict:
    """Receptive field of the paper's default discriminator (``PAPER_PATCHGAN``), exact."""
    return report(answer, patch_receptive_field(PAPER_PATCHGAN), sig=None,
                  hint="walk back from one output unit: r = 1, then r <- s * r + (k - s) for the layers from the "
                       "last to the first: (4, 1), (4, 1), (4, 2), (4, 2), (4, 2)")
