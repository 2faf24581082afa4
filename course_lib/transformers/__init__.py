"""Chapters 16-18: transformers on images -- Image GPT, the Vision Transformer, BEiT.

- ``blocks``     the shared pre-norm block: ``attention`` (Vaswani et al. Eq. 1, written out, from
                 ``course_lib.attention``), ``causal_mask``, ``SelfAttention`` (fused q/k/v, timm's layout),
                 ``MLP``, ``Block`` (x + MSA(LN(x)), x + MLP(LN(x)))
- ``vit``        Dosovitskiy et al. 2021: ``patchify``, ``PatchEmbed``, ``ViT``, ``vit_from_timm`` (weights from a
                 timm ``VisionTransformer``), ``attention_maps``, ``attention_rollout`` (Abnar & Zuidema 2020)
- ``shipped``    the trained ViTs of notebook 17 and the ResNet trained on the same 10 % of the data
"""

from course_lib.attention import attention
from course_lib.transformers.blocks import MLP, Block, SelfAttention, causal_mask
from course_lib.transformers.vit import (
    PatchEmbed,
    ViT,
    attention_maps,
    attention_rollout,
    patchify,
    vit_from_timm,
)

__all__ = ["MLP", "Block", "PatchEmbed", "SelfAttention", "ViT", "attention", "attention_maps", "attention_rollout",
           "causal_mask", "patchify", "vit_from_timm"]
