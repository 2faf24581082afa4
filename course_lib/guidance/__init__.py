"""Chapters 14-15: conditional diffusion, guidance, and the cross-attention of latent diffusion.

Notebook 14 (Dhariwal & Nichol 2021, classifier guidance; Ho & Salimans 2022, classifier-free guidance):

- ``guidance``         ``cfg`` (eps_u + s (eps_c - eps_u)), ``drop_condition`` (the null label in training),
                       ``classifier_guided_eps`` (eps - s sqrt(1 - abar_t) grad log p(y | x_t)), ``classifier_grad``
                       (that gradient by autograd), ``ClassConditionalUNet`` (a class embedding added to the
                       U-Net's time embedding, with a learned null row), ``eps_cfg`` (both passes in one batch),
                       ``NoisyClassifier`` (p(y | x_t, t))

Notebook 15 (Rombach et al. 2022, latent diffusion, Sec. 3.3):

- ``cross_attention``  ``masked_attention`` (Eq. 1 written out, with a key mask and the weights),
                       ``CrossAttention`` (Q from the image, K and V from the text), ``SpatialCrossAttention``
                       (GroupNorm, pixels as tokens, residual)
- ``latent``           ``LatentTextDenoiser`` (eps_theta(z_t, t, tau(y)) on an autoencoder's 7x7 latent: residual
                       blocks, self-attention, cross-attention to the caption; the text encoder trained with it),
                       ``drop_caption`` (the empty caption for CFG), ``latent_train_step``, ``sample_latents``

The captions, tokenizer and text encoder are in ``course_lib.text``; the U-Net and the noise schedule in
``course_lib.diffusion``. The library gives single steps; the notebooks own the sampling loops.
"""

from course_lib.guidance.cross_attention import (
    CrossAttention,
    SpatialCrossAttention,
    masked_attention,
)
from course_lib.guidance.guidance import (
    ClassConditionalUNet,
    NoisyClassifier,
    cfg,
    classifier_grad,
    classifier_guided_eps,
    drop_condition,
    eps_cfg,
)

__all__ = [
    "ClassConditionalUNet", "CrossAttention", "NoisyClassifier", "SpatialCrossAttention", "cfg", "classifier_grad",
    "classifier_guided_eps", "drop_condition", "eps_cfg", "masked_attention",
]
