"""Notebook 18's BEiT: blockwise masking (Algorithm 1: the exact count, masked patches in blocks, not scattered),
the mask token reaching exactly the masked positions, Eq. 1's loss against a direct computation, and "loss goes
down"."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.transformers import ViT
from course_lib.transformers.beit import BEiT, blockwise_mask, masks, mim_loss


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: 1 thread, restored after


def test_blockwise_mask_count_and_blocks():
    g = torch.Generator().manual_seed(0)
    for grid, ratio in ((7, 0.4), (14, 0.4), (7, 0.2)):
        ms = torch.stack([blockwise_mask(grid, ratio, generator=g) for _ in range(300)])
        counts = ms.sum(1)
        target = round(ratio * grid * grid)
        assert ms.shape == (300, grid * grid) and ms.dtype == torch.bool
        assert int(counts.max()) == target                      # never more than asked
        assert float((counts == target).float().mean()) > 0.9   # almost always exactly (the attempts rarely run out)
    blocky = torch.stack([blockwise_mask(14, 0.4, generator=g) for _ in range(200)]).view(200, 14, 14)
    scattered = torch.rand(200, 196, generator=g).argsort(1) < round(0.4 * 196)      # as many, uniformly placed
    scattered = scattered.view(200, 14, 14)

    def neighbour_masked(m):                                    # P(right neighbour masked | masked)
        return float((m[:, :, :-1] & m[:, :, 1:]).sum() / m[:, :, :-1].sum())
    assert neighbour_masked(blocky) > 0.7 > 0.45 > neighbour_masked(scattered)


def test_mask_token_replaces_exactly_the_masked_patches():
    torch.manual_seed(0)
    model = BEiT(ViT(dim=32, depth=2, heads=2), vocab=16).eval()
    x = torch.rand(2, 1, 28, 28)
    M = masks(2, 7, 0.4, torch.Generator().manual_seed(2))
    y = x.clone()
    for b in range(2):                                          # change the pixels of the masked patches only
        for n in M[b].nonzero().flatten().tolist():
            r, c = divmod(n, 7)
            y[b, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = torch.rand(4, 4)
    with torch.no_grad():
        assert torch.allclose(model(x, M), model(y, M), atol=1e-6)     # what is masked is not seen
        assert not torch.allclose(model(x, torch.zeros_like(M)), model(y, torch.zeros_like(M)), atol=1e-4)
    with pytest.raises(ValueError, match=r"\(2, 49\) bool"):
        model(x, M.float())


def test_mim_loss_is_cross_entropy_on_masked_positions():
    torch.manual_seed(0)
    model = BEiT(ViT(dim=32, depth=1, heads=2), vocab=10)
    x = torch.rand(3, 1, 28, 28)
    codes = torch.randint(0, 10, (3, 49), generator=torch.Generator().manual_seed(3))
    M = masks(3, 7, 0.4, torch.Generator().manual_seed(4))
    loss, acc = mim_loss(model, x, codes, M)
    logits = model(x, M)
    direct = torch.stack([F.cross_entropy(logits[b, n][None], codes[b, n][None]) for b, n in M.nonzero().tolist()]).mean()
    assert torch.allclose(loss, direct, atol=1e-6)
    assert float(acc) == float((logits[M].argmax(-1) == codes[M]).float().mean())


def test_beit_loss_goes_down():
    torch.manual_seed(0)
    model = BEiT(ViT(dim=32, depth=2, heads=2), vocab=4)
    x = torch.rand(16, 1, 28, 28)
    codes = (x.view(16, 7, 4, 7, 4).mean((2, 4)).flatten(1) * 4).long().clamp(0, 3)   # tokens = the patch's brightness
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(5)
    first = None
    for _ in range(60):
        loss, _ = mim_loss(model, x, codes, masks(16, 7, 0.4, g))
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.8 * first


def test_blockwise_mask_draws_can_be_supplied():
    """``rand`` (how notebook 18's exercise is checked) gives the same masks as the generator it wraps."""
    from course_lib.transformers.beit import uniform_draws

    a = [blockwise_mask(7, 0.4, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    b = [blockwise_mask(7, 0.4, rand=uniform_draws(torch.Generator().manual_seed(s))) for s in range(20)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
