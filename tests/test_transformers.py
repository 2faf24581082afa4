"""Chapters 16-18: the attention kernel, the transformer block and the ViT.

Oracles: ``F.scaled_dot_product_attention`` (with boolean masks), timm's ``Block`` and ``VisionTransformer`` (same
shapes, weights copied by name, every parameter randomised so LayerNorm gains and biases matter), a convolution
with kernel = stride = p for the patch embedding, and hand-computed attention rollouts.
"""

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block as TimmBlock
from timm.models.vision_transformer import VisionTransformer
from tolerance import assert_close_scaled

from course_lib.transformers import (
    Block,
    PatchEmbed,
    SelfAttention,
    ViT,
    attention,
    attention_maps,
    attention_rollout,
    causal_mask,
    patchify,
    vit_from_timm,
)


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: 1 thread, restored after


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn at random (LayerNorm gains near 1), so no term of the forward pass is trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.copy_(1 + 0.1 * noise if "norm" in name and name.endswith("weight") else 0.2 * noise)
    return module


# ------------------------------------------------------------------------------------------ attention


@pytest.mark.parametrize("mask_kind", ["none", "causal", "random", "keys"])
def test_attention_equals_sdpa(mask_kind):
    B, h, N, M, d, e = 2, 3, 5, 5, 8, 6
    q, k, v = randn(B, h, N, d, seed=1), randn(B, h, M, d, seed=2), randn(B, h, M, e, seed=3)
    mask = {"none": None, "causal": causal_mask(N),
            "random": torch.rand(B, h, N, M, generator=torch.Generator().manual_seed(4)) < 0.5,
            "keys": torch.tensor([[True, True, False, True, False], [True] * 5])[:, None, None, :]}[mask_kind]
    if mask is not None and mask.dim() == 4 and mask.shape[-2] == N:
        mask[..., 0] = True                                               # every query keeps a key
    out, w = attention(q, k, v, mask, return_weights=True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert_close_scaled(out, ref, scale=v.abs().max())
    assert_close_scaled(w.sum(-1), torch.ones(B, h, N, dtype=w.dtype), scale=1.0)
    if mask is not None:
        assert bool((w[~mask.expand_as(w)] == 0).all())


def test_causal_mask_lets_token_i_see_only_tokens_up_to_i():
    m = causal_mask(4)
    assert m.dtype == torch.bool
    assert m.tolist() == [[True, False, False, False], [True, True, False, False],
                          [True, True, True, False], [True, True, True, True]]
    q, k, v = randn(1, 1, 4, 3, seed=5), randn(1, 1, 4, 3, seed=6), randn(1, 1, 4, 2, seed=7)
    out = attention(q, k, v, m)
    v2 = v.clone()
    v2[..., 2:, :] += 100.0                                               # change the future
    assert torch.equal(attention(q, k, v2, m)[..., :2, :], out[..., :2, :])
    assert torch.equal(out[..., 0, :], v[..., 0, :])                      # token 0 sees only itself


def test_attention_rejects_bad_input():
    q = randn(1, 1, 4, 8)
    with pytest.raises(ValueError, match=r"q \(\.\.\., N, d\)"):
        attention(q, randn(1, 1, 4, 7), randn(1, 1, 4, 8))
    with pytest.raises(ValueError, match="bool mask"):
        attention(q, q, q, torch.ones(4, 4))


def test_self_attention_both_paths_agree():
    torch.manual_seed(0)
    sa = SelfAttention(16, 4).double()
    x = randn(3, 7, 16, seed=8)
    with torch.no_grad():
        fast = sa(x, causal_mask(7))
        slow, w = sa(x, causal_mask(7), return_attention=True)
    assert w.shape == (3, 4, 7, 7)
    assert_close_scaled(slow, fast, scale=fast.abs().max() * 16)
    with pytest.raises(ValueError, match="divisible"):
        SelfAttention(10, 4)


def test_block_equals_timm_block():
    ours = randomise(Block(32, 4, 4.0).double(), seed=1)
    theirs = TimmBlock(32, 4, mlp_ratio=4.0, qkv_bias=True).double()
    theirs.load_state_dict(ours.state_dict())
    x = randn(2, 9, 32, seed=9)
    with torch.no_grad():
        ref, out = theirs(x), ours(x)
    assert_close_scaled(out, ref, scale=ref.abs().max() * 32)


# ------------------------------------------------------------------------------------------ ViT


def test_patchify_matches_the_strided_convolution():
    torch.manual_seed(0)
    pe = PatchEmbed(28, 4, 1, 12).double()
    x = randn(2, 1, 28, 28, seed=10)
    P = patchify(x, 4)
    assert P.shape == (2, 49, 16)
    assert torch.equal(P[0, 1], x[0, 0, 0:4, 4:8].flatten())              # patch 1: row 0, column 1
    assert torch.equal(P[1, 7], x[1, 0, 4:8, 0:4].flatten())              # patch 7: row 1, column 0
    ref = pe(x)
    ours = P @ pe.proj.weight.flatten(1).T + pe.proj.bias
    assert_close_scaled(ours, ref, scale=ref.abs().max() * 16)
    x3 = randn(1, 3, 8, 8, seed=11)                                        # channels go inside each patch
    assert torch.equal(patchify(x3, 4)[0, 0], x3[0, :, :4, :4].flatten())
    with pytest.raises(ValueError, match="divisible by p=4"):
        patchify(randn(1, 1, 30, 30), 4)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        pe(randn(2, 28, 28))


def test_vit_equals_timm_on_random_weights():
    timm_model = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                                   num_heads=4, mlp_ratio=4.0)
    randomise(timm_model, seed=2).eval()
    ours = vit_from_timm(timm_model).eval()
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        ref, out = timm_model(x), ours(x)
    assert out.shape == (6, 10)
    err = float((out - ref).abs().max() / ref.abs().max())
    assert err <= 1e-5, err
    assert float(ref.std()) > 0.1                                          # not a trivial network


def test_vit_from_timm_takes_the_shape_and_rejects_other_heads():
    t = VisionTransformer(img_size=16, patch_size=8, in_chans=3, num_classes=5, embed_dim=24, depth=2, num_heads=3,
                          mlp_ratio=2.0)
    v = vit_from_timm(t)
    assert v.patch_embed.num_patches == 4 and len(v.blocks) == 2 and v.head.out_features == 5
    assert v.blocks[0].mlp.fc1.out_features == 48
    with pytest.raises(ValueError, match="global_pool='token'"):
        vit_from_timm(VisionTransformer(img_size=16, patch_size=8, in_chans=1, num_classes=5, embed_dim=24, depth=1,
                                        num_heads=3, global_pool="avg"))


def test_attention_maps_are_distributions_over_tokens():
    torch.manual_seed(0)
    model = ViT(depth=3).eval()
    maps = attention_maps(model, torch.rand(2, 1, 28, 28))
    assert len(maps) == 3 and maps[0].shape == (2, 4, 50, 50)
    for w in maps:
        assert torch.allclose(w.sum(-1), torch.ones(2, 4, 50), atol=1e-5)
    enc, maps2 = model.encode(model.embed(torch.rand(2, 1, 28, 28)), return_attention=True)
    assert enc.shape == (2, 50, 64) and len(maps2) == 3


def test_attention_rollout_by_hand():
    T = 4
    eye = torch.eye(T).expand(1, 2, T, T)
    assert torch.equal(attention_rollout([eye, eye]), torch.zeros(1, T - 1))   # nobody mixes: cls keeps itself
    A = torch.softmax(torch.randn(1, 2, T, T, generator=torch.Generator().manual_seed(13)), -1)
    one = 0.5 * A.mean(1)[0] + 0.5 * torch.eye(T)
    assert torch.allclose(attention_rollout([A])[0], one[0, 1:])
    B = torch.softmax(torch.randn(1, 2, T, T, generator=torch.Generator().manual_seed(14)), -1)
    two = (0.5 * B.mean(1)[0] + 0.5 * torch.eye(T)) @ one                  # the later layer on the left
    assert torch.allclose(attention_rollout([A, B])[0], two[0, 1:])
    assert float(attention_rollout([A, B]).sum()) < 1


def test_vit_loss_goes_down():
    torch.manual_seed(0)
    model = ViT(dim=32, depth=2, heads=2)
    x = torch.rand(32, 1, 28, 28)
    y = x[:, 0, :, :14].mean((1, 2)).gt(x[:, 0, :, 14:].mean((1, 2))).long()  # brighter on the left?
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first
