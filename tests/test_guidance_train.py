"""Chapter 14's training steps and guided sampler (course_lib.guidance.train) on tiny models: the label dropout
of CFG training, the loop over (images, labels), the guided DDIM sampler's scale-0 identity, the registry."""

import pytest
import torch

from course_lib.diffusion import NoiseSchedule, ddim_timesteps
from course_lib.diffusion.train import to_unit, train_loop
from course_lib.guidance import ClassConditionalUNet, NoisyClassifier, eps_cfg
from course_lib.guidance import train as gtrain


def tiny() -> ClassConditionalUNet:
    torch.manual_seed(0)
    model = ClassConditionalUNet(10, channels=(16, 16), attention=(False, False), heads=2)   # 2 channels per group
    torch.nn.init.normal_(model.conv_out.weight, std=0.3)     # the U-Net starts at eps = 0: make the label matter
    return model


def test_cond_train_step_drops_labels_and_lowers_the_loss():
    torch.set_num_threads(1)
    model, schedule = tiny(), NoiseSchedule(50)
    x0 = torch.rand(16, 1, 28, 28) * 2 - 1
    y = torch.arange(16) % 10
    seen = []
    original = model.forward
    model.forward = lambda x, t, lab: (seen.append(lab.clone()), original(x, t, lab))[1]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = [float(gtrain.cond_train_step(model, opt, schedule, x0, y, torch.Generator().manual_seed(k), 0.5))
              for k in range(30)]
    dropped = torch.stack(seen) == model.null_label                       # (30, 16)
    assert 0.3 < float(dropped.float().mean()) < 0.7                     # p_uncond = 0.5
    assert bool((torch.stack(seen)[~dropped] == y.expand(30, 16)[~dropped]).all())
    assert sum(losses[-5:]) < sum(losses[:5])
    with pytest.raises(ValueError, match=r"expected a probability"):
        gtrain.cond_train_step(model, opt, schedule, x0, y, None, 1.5)


def test_train_loop_draws_the_same_rows_of_images_and_labels():
    torch.set_num_threads(1)
    images = torch.arange(20).float().view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    labels = torch.arange(20)
    pairs = []

    def step(model, opt, x, y, g):
        pairs.append((x[:, 0, 0, 0].long(), y))
        opt.step()                                                # (no gradients: the step changes nothing)
        return torch.tensor(0.0)

    cfg = gtrain.ClassifierTrainConfig(steps=4, batch_size=5, warmup=1)
    train_loop(torch.nn.Linear(1, 1), cfg, (images, labels), step, progress=False)
    assert len(pairs) == 4 and all(torch.equal(a, b) for a, b in pairs)


def test_noisy_classifier_step_learns_a_separable_toy():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, schedule = NoisyClassifier(2, channels=(16, 16)), NoiseSchedule(20)
    x0 = torch.full((16, 1, 28, 28), -0.8)
    x0[:8, :, :, :14] = x0[8:, :, :, 14:] = 0.8                # class 0 bright on the left, class 1 on the right
    y = torch.cat([torch.zeros(8), torch.ones(8)]).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = [float(gtrain.classifier_train_step(model, opt, schedule, x0, y, torch.Generator().manual_seed(k)))
              for k in range(40)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_sample_cfg_shapes_scale_and_null_labels():
    torch.set_num_threads(1)
    model, schedule = tiny().eval(), NoiseSchedule(20)
    y = torch.tensor([0, 3, 7])
    null = torch.full_like(y, model.null_label)
    out = gtrain.sample_cfg(model, schedule, y, 2.0, steps=5, seed=1, batch_size=2)
    assert out.shape == (3, 1, 28, 28) and 0 <= float(out.min()) and float(out.max()) <= 1
    # scale 0 is the unconditional model whatever the labels: the same as sampling the null label
    torch.testing.assert_close(gtrain.sample_cfg(model, schedule, y, 0.0, steps=5, seed=1),
                               gtrain.sample_cfg(model, schedule, null, 3.0, steps=5, seed=1), rtol=0, atol=1e-5)
    assert not torch.allclose(out, gtrain.sample_cfg(model, schedule, y, 0.0, steps=5, seed=1, batch_size=2), atol=1e-4)


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_sample_cfg_takes_one_pass_at_scales_0_and_1_and_agrees_with_the_combination(scale):
    """At scale 0 or 1 sample_cfg runs only the model the combination keeps; the images equal the loop over
    eps_cfg (both passes in one batch, then cfg). Images in [0, 1]: the batch of two and the batch of one may
    take different kernel paths, so they agree to 1e-4 of the range, not bit for bit."""
    torch.set_num_threads(1)
    model, schedule = tiny().eval(), NoiseSchedule(20)
    y = torch.tensor([0, 3, 7])
    calls = []
    hook = model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    got = gtrain.sample_cfg(model, schedule, y, scale, steps=5, seed=1)
    hook.remove()
    assert calls == [3] * 5                                    # one pass of the 3 images per step, not 6
    gen, k = torch.Generator().manual_seed(1), schedule.T // 5
    x = torch.randn((3, 1, 28, 28), generator=gen)
    with torch.no_grad():
        for t in ddim_timesteps(schedule.T, 5):
            x = schedule.ddim_step(eps_cfg(model, x, torch.full((3,), t), y, scale), t, t - k, x, clip_x0=1.0)
    torch.testing.assert_close(got, to_unit(x), rtol=0, atol=1e-4)


def test_guidance_checkpoints_are_registered():
    from course_lib import shipping

    found = shipping.registry()
    for name, cls in (("ddpm_cond", ClassConditionalUNet), ("noisy_classifier", NoisyClassifier)):
        model, train = found[name]()
        assert isinstance(model, cls) and callable(train)
