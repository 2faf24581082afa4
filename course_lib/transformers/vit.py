"""The Vision Transformer (notebook 17), and the attention it pays.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words" (https://arxiv.org/abs/2010.11929), Eqs. 1-4:

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          (Eq. 1: patches, linearly embedded, + positions)
    z_l = Block(z_{l-1}),  l = 1..L                          (Eqs. 2-3: pre-norm MSA and MLP, ``blocks.Block``)
    y   = LN(z_L^0)                                          (Eq. 4: the class token's final state)

The only image-specific pieces are the cut into patches and the learned position embeddings; nothing in the
blocks knows that token 9 sits next to token 10 (the notes' "much less image-specific inductive bias").

- ``patchify``           (B, C, H, W) -> (B, N, p*p*C): the patches x_p of Eq. 1, row by row
- ``PatchEmbed``         x_p E as one strided convolution (kernel = stride = p), timm's ``patch_embed.proj``
- ``ViT``                the model, parameter names as timm's ``VisionTransformer``
- ``vit_from_timm``      a timm ``VisionTransformer`` of the same shape -> our ``ViT``, weights copied by name
- ``attention_maps``     every layer's attention weights (L tensors (B, h, N+1, N+1))
- ``attention_rollout``  Abnar & Zuidema 2020 (https://arxiv.org/abs/2005.00928), Eq. 1 of Sec. 3: the class
                         token's attention to the patches through all layers, residual included

Shapes: B batch, C channels, H = W image side, p patch side, N = (H/p)^2 patches, D width, L layers, h heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib.transformers.blocks import Block


def patchify(x: Tensor, p: int) -> Tensor:
    """x (B, C, H, W) -> (B, N, p*p*C), N = (H/p)(W/p), patches in row-major order, each flattened (C, p, p)."""
    if x.ndim != 4 or x.shape[2] % p or x.shape[3] % p:
        raise ValueError(f"expected images (B, C, H, W) with H and W divisible by p={p}, got {tuple(x.shape)}")
    B, C, H, W = x.shape
    x = x.view(B, C, H // p, p, W // p, p)                 # (B, C, H/p, p, W/p, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                        # (B, H/p, W/p, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)     # (B, N, C*p*p)


class PatchEmbed(nn.Module):
    """x (B, C, H, W) -> (B, N, D): each p x p patch times E (D x C p p), plus a bias.

    A convolution with kernel = stride = p is exactly that matrix product on ``patchify(x, p)``."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} must be divisible by patch_size={patch_size}")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        s, c = self.img_size, self.in_chans
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1:] != (c, s, s):
            raise ValueError(f"expected images of shape (B, {c}, {s}, {s}), got {tuple(getattr(x, 'shape', ()))}")
        return self.proj(x).flatten(2).transpose(1, 2)       # (B, D, H/p, W/p) -> (B, N, D)


class ViT(nn.Module):
    """x (B, in_chans, img_size, img_size) -> logits (B, num_classes).

    ``embed`` (Eq. 1 without the class token and positions), ``encode`` (Eqs. 1-3 and the final LayerNorm on
    patch embeddings) and ``features`` (Eq. 4, the class token's state) are separate so BEiT can swap masked
    patch embeddings for a learned mask token before ``encode``."""

    def __init__(self, img_size: int = 28, patch_size: int = 4, in_chans: int = 1, num_classes: int = 10,
                 dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, dim)
        N = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, N + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init)

    def embed(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> patch embeddings x_p E (B, N, D)."""
        return self.patch_embed(x)

    def encode(self, tokens: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Patch embeddings (B, N, D) -> LN(z_L) (B, N+1, D), the class token first; with ``return_attention``
        also each block's weights, L tensors (B, h, N+1, N+1)."""
        B = tokens.shape[0]
        z = torch.cat([self.cls_token.expand(B, -1, -1), tokens], 1) + self.pos_embed   # (B, N+1, D), Eq. 1
        maps = []
        for block in self.blocks:
            if return_attention:
                z, w = block(z, return_attention=True)
                maps.append(w)
            else:
                z = block(z)
        z = self.norm(z)
        return (z, maps) if return_attention else z

    def features(self, x: Tensor) -> Tensor:
        """Eq. 4: y = LN(z_L^0), the class token's final state (B, D)."""
        return self.encode(self.embed(x))[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _init(m: nn.Module) -> None:
    """timm's ViT init: truncated normal (std 0.02) weights for linear layers, zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)


def vit_from_timm(timm_model: nn.Module) -> ViT:
    """A ``ViT`` with the weights of a timm ``VisionTransformer`` of the same shape (class token, no register
    tokens, qkv bias, no layer scale, token pooling): every parameter copied by its (shared) name."""
    pe = timm_model.patch_embed
    patch = pe.patch_size[0] if isinstance(pe.patch_size, tuple) else pe.patch_size
    img = pe.img_size[0] if isinstance(pe.img_size, tuple) else pe.img_size
    blocks = list(timm_model.blocks)
    dim, heads = timm_model.embed_dim, blocks[0].attn.num_heads
    ratio = blocks[0].mlp.fc1.out_features / dim
    if getattr(timm_model, "global_pool", "token") != "token" or timm_model.cls_token is None \
            or getattr(timm_model, "num_reg_tokens", 0):
        raise ValueError("expected a timm VisionTransformer with a class token, global_pool='token' and no "
                         "register tokens")
    ours = ViT(img, patch, pe.proj.in_channels, timm_model.num_classes, dim, len(blocks), heads, ratio)
    theirs = timm_model.state_dict()
    extra = [k for k, v in theirs.items() if k not in ours.state_dict()]
    if extra:
        raise ValueError(f"the timm model has parameters ViT lacks (layer scale, qk-norm, fc_norm?): {extra[:5]}")
    with torch.no_grad():
        for name, p in ours.state_dict().items():
            if theirs[name].shape != p.shape:
                raise ValueError(f"{name}: timm has {tuple(theirs[name].shape)}, ViT expects {tuple(p.shape)}")
            p.copy_(theirs[name])
    return ours


@torch.no_grad()
def attention_maps(model: ViT, x: Tensor) -> list[Tensor]:
    """Every block's attention weights for images x: L tensors (B, h, N+1, N+1); row i is where token i looks
    (token 0 is the class token)."""
    _, maps = model.encode(model.embed(x), return_attention=True)
    return maps


def attention_rollout(maps: list[Tensor]) -> Tensor:
    """Abnar & Zuidema 2020: A~_l = (mean over heads of A_l + I) / 2, rows renormalised; R = A~_L ... A~_1.

    maps: L tensors (B, h, N+1, N+1) -> (B, N), the class token's row of R over the patches (sums to at most 1;
    the rest stays on the class token)."""
    B, _, T, _ = maps[0].shape
    eye = torch.eye(T, dtype=maps[0].dtype, device=maps[0].device)
    R = eye.expand(B, T, T)
    for A in maps:
        A = 0.5 * A.mean(1) + 0.5 * eye                     # (B, T, T): the residual stream carries half
        A = A / A.sum(-1, keepdim=True)
        R = A @ R                                           # later layers act on the result of earlier ones
    return R[:, 0, 1:]                                      # (B, N)
