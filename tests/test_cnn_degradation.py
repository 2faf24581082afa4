"""The plain and residual stacks of notebook 01's degradation experiment (He et al. 2015, Sec. 4.1)."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.cnn.resnet import PlainBlock, ResidualBlock, stack


def test_plain_block_is_the_residual_block_without_its_shortcut():
    torch.manual_seed(0)
    res = ResidualBlock(6, 6).double().eval()
    plain = PlainBlock(6, 6).double().eval()
    plain.load_state_dict(res.state_dict())                      # the same layers, the same weights
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    assert torch.equal(plain(x), F.relu(res.residual(x)))
    assert torch.equal(res(x), F.relu(res.residual(x) + x))     # Eq. 1: the shortcut is the only difference
    assert not torch.allclose(plain(x), res(x))


@pytest.mark.parametrize("block", [PlainBlock, ResidualBlock])
@pytest.mark.parametrize("blocks,size", [(1, 7), (4, 14)])
def test_stack_shapes_and_depth(block, blocks, size):
    net = stack(block, blocks, width=8)
    assert net(torch.rand(3, 1, size, size)).shape == (3, 10)
    weight_layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weight_layers) == 2 * blocks + 2
    assert sum(isinstance(m, block) for m in net) == blocks


@pytest.mark.parametrize("block", [PlainBlock, ResidualBlock])
def test_stack_loss_goes_down(block):
    torch.manual_seed(0)
    net = stack(block, 3, width=8)
    x, y = torch.rand(32, 1, 7, 7), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses
