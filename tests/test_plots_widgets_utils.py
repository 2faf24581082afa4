"""Plot helpers, the headless-aware widget helper, seeding and the device/AMP helper."""

import contextlib

import ipywidgets as widgets
import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plots, utils  # noqa: E402
from course_lib.widgets import interactive  # noqa: E402


@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (5, 8, 8), (5, 3, 8, 8)])
def test_image_grid_draws_each_image(shape):
    images = torch.rand(shape)
    fig = plots.image_grid(images, titles=[str(i) for i in range(5)], ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(drawn) == 5
    assert [ax.get_title() for ax in drawn] == ["0", "1", "2", "3", "4"]
    plt.close(fig)


def test_image_grid_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        plots.image_grid(torch.rand(8, 8))


def test_draw_boxes_and_scene():
    fig, ax = plt.subplots()
    ax.imshow(torch.zeros(32, 32))
    boxes = torch.tensor([[1.0, 2.0, 10.0, 12.0], [5.0, 5.0, 30.0, 31.0]])
    plots.draw_boxes(ax, boxes, labels=torch.tensor([1, 2]), scores=torch.tensor([0.9, 0.5]),
                     class_names=("bg", "a", "b"))
    rects = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rects) == 2
    assert rects[1].get_width() == 25 and rects[1].get_height() == 26
    assert [t.get_text() for t in ax.texts] == ["a 0.90", "b 0.50"]
    plt.close(fig)


def test_overlay_heatmap_normalises():
    fig, ax = plt.subplots()
    plots.overlay_heatmap(ax, torch.rand(1, 8, 8), torch.arange(64.0).view(8, 8) * 5)
    heat = ax.images[1].get_array()
    assert heat.min() == pytest.approx(0) and heat.max() == pytest.approx(1)
    plt.close(fig)


def test_interactive_headless_draws_the_defaults(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    calls = []
    interactive(lambda k, name: calls.append((k, name)), k=widgets.IntSlider(value=3, min=1, max=9),
                name=widgets.Dropdown(options=["a", "b"], value="b"))
    assert calls == [(3, "b")]


def test_interactive_live_binds_controls(monkeypatch):
    monkeypatch.delenv("COURSE_HEADLESS", raising=False)
    calls = []
    slider = widgets.IntSlider(value=2, min=1, max=9)
    w = interactive(lambda k: calls.append(k), k=slider)
    assert isinstance(w, widgets.interactive) and slider in w.children
    slider.value = 7  # moving the control re-runs the function
    assert calls[-1] == 7


def test_interactive_rejects_non_widgets():
    with pytest.raises(TypeError, match="ipywidgets"):
        interactive(lambda k: None, k=3)


def test_seed_everything_is_reproducible():
    utils.seed_everything(5)
    a, na = torch.rand(3), np.random.rand()
    g = utils.seed_everything(5)
    assert torch.equal(a, torch.rand(3)) and na == np.random.rand()
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(5)))


def test_autocast_is_a_no_op_on_cpu():
    assert isinstance(utils.autocast("cpu"), contextlib.nullcontext)
    with utils.autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_amp_dtype_is_float16_where_bfloat16_is_only_emulated(monkeypatch):
    # A T4 (compute capability 7.5) "supports" bfloat16 by emulation, slowly: autocast must pick float16 there.
    def t4(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert utils.amp_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)   # an A100
    assert utils.amp_dtype("cuda") == torch.bfloat16
    assert utils.amp_dtype("cpu") is None


def test_backward_step_scales_float16_gradients_and_keeps_the_scaler(monkeypatch):
    torch.manual_seed(0)
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    plain, scaled = torch.nn.Linear(5, 1).double(), torch.nn.Linear(5, 1).double()
    scaled.load_state_dict(plain.state_dict())
    opt_plain, opt_scaled = torch.optim.SGD(plain.parameters(), lr=0.1), torch.optim.SGD(scaled.parameters(), lr=0.1)
    for _ in range(3):
        utils.backward_step((plain(x) - y).pow(2).mean(), opt_plain, "cpu")          # float32 path: no scaler
    assert opt_plain not in utils._SCALERS
    monkeypatch.setattr(utils, "amp_dtype", lambda dev: torch.float16)             # as on a T4
    for _ in range(3):
        utils.backward_step((scaled(x) - y).pow(2).mean(), opt_scaled, "cpu")
    scaler = utils._SCALERS[opt_scaled]
    assert scaler.get_scale() == 2.0 ** 16         # the default initial scale: no overflow, no growth in 3 steps
    for p, q in zip(plain.parameters(), scaled.parameters()):                     # unscaled before each step
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12 * float(p.detach().abs().max()))


def test_setup_reports_device(capsys):
    dev = utils.setup(seed=1)
    assert dev == utils.device()
    assert f"device {dev}" in capsys.readouterr().out


def test_value_checks_run_on_the_cpu_and_never_read_back_from_a_device():
    # A "meta" tensor stands in for a GPU tensor: it has a shape and a dtype but no values, so reading one back
    # (what int(t.max()) does: a host synchronisation on a GPU) raises. The shape checks still run there.
    from course_lib.diffusion import NoiseSchedule
    from course_lib.text.encoder import TextEncoder

    schedule = NoiseSchedule(10)
    x_meta, t_meta = torch.empty(3, 1, 4, 4, device="meta"), torch.empty(3, dtype=torch.long, device="meta")
    assert schedule._check(x_meta, t_meta).shape == (3,)
    with pytest.raises(ValueError, match=r"expected t in \[0, 9\]"):
        schedule._check(torch.zeros(3, 1, 4, 4), torch.tensor([0, 5, 10]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        schedule._check(x_meta, torch.empty(2, dtype=torch.long, device="meta"))
    encoder = TextEncoder(vocab_size=5)
    ids = torch.tensor([[1, 7]])
    with pytest.raises(ValueError, match=r"expected ids in \[0, 4\]"):
        encoder.check(ids, torch.ones(1, 2, dtype=torch.bool))
    encoder.check(ids.to("meta"), torch.ones(1, 2, dtype=torch.bool, device="meta"))
    assert not utils.values_checkable(t_meta) and utils.values_checkable(torch.zeros(1))
