"""Resumable training: a run killed (SIGKILL) mid-way resumes from its last state and ends bit-identical to
an uninterrupted run; no partial file is ever left under a final name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from course_lib import checkpoints
from course_lib.training import fit
from course_lib.resume import load_state, save_state


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))


def tiny_data(n: int = 96):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_state_round_trip_continues_identically(tmp_path):
    """Save after 3 steps, continue 4 more; loading the saved state into fresh objects and doing the same
    4 steps gives exactly the same weights (optimizer moments, LR schedule, and RNG all restored)."""
    def make():
        m = tiny_model()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        return m, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10), torch.Generator().manual_seed(5)

    def steps(m, opt, sched, g, k):
        for _ in range(k):
            x = torch.rand(8, 1, 28, 28, generator=g)
            loss = m(x).logsumexp(1).mean()  # dropout draws from the global RNG
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()

    m, opt, sched, g = make()
    steps(m, opt, sched, g, 3)
    save_state(tmp_path / "s.safetensors", 3, m, opt, sched, g, extra={"losses": torch.arange(3.0)}, config={"a": 1})
    steps(m, opt, sched, g, 4)

    m2, opt2, sched2, g2 = make()
    step, extra = load_state(tmp_path / "s.safetensors", m2, opt2, sched2, g2, config={"a": 1})
    assert step == 3 and torch.equal(extra["losses"], torch.arange(3.0))
    assert not same_weights(m, m2)
    steps(m2, opt2, sched2, g2, 4)
    assert same_weights(m, m2)
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_state_of_another_run_or_unreadable_is_not_resumed(tmp_path):
    m = tiny_model()
    opt = torch.optim.AdamW(m.parameters())
    path = tmp_path / "s.safetensors"
    assert load_state(path, m, opt) is None  # nothing to resume
    save_state(path, 2, m, opt, config={"epochs": 3})
    with pytest.warns(checkpoints.CheckpointWarning, match="another run"):
        assert load_state(path, m, opt, config={"epochs": 4}) is None
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(checkpoints.CheckpointWarning, match="cannot be read"):
        assert load_state(path, m, opt, config={"epochs": 3}) is None


def test_fit_interrupted_by_an_error_resumes_to_the_same_weights(tmp_path, monkeypatch):
    images, labels = tiny_data()
    reference = tiny_model()
    fit(reference, images, labels, epochs=3, batch_size=16, progress=False)  # 18 steps, no state

    import course_lib.training as train_module
    real_step, calls = train_module.train_step, []

    def crash_at_8(*args):
        if len(calls) == 8:
            raise KeyboardInterrupt  # the learner pressed stop
        calls.append(1)
        return real_step(*args)

    state = tmp_path / "run.state.safetensors"
    model = tiny_model()
    monkeypatch.setattr(train_module, "train_step", crash_at_8)
    with pytest.raises(KeyboardInterrupt):
        fit(model, images, labels, epochs=3, batch_size=16, progress=False, state=state, state_every=5)
    monkeypatch.setattr(train_module, "train_step", real_step)

    resumed = tiny_model()  # a new process would start from a fresh model
    result = fit(resumed, images, labels, epochs=3, batch_size=16, progress=False, state=state, state_every=5)
    assert len(result["losses"]) == 18
    assert same_weights(resumed, reference)


CHILD = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    torch.set_num_threads(1)                 # the same settings in every run, whatever the caller's environment
    torch.use_deterministic_algorithms(True)
    import course_lib.training as t
    from course_lib.training import fit
    sys.path.insert(0, {tests!r})
    from test_resume import tiny_data, tiny_model
    real = t.train_step
    def slow(*a):
        time.sleep(0.02)  # slow enough for the parent to kill it mid-run
        return real(*a)
    t.train_step = slow
    images, labels = tiny_data(256)
    model = tiny_model()
    fit(model, images, labels, epochs=4, batch_size=16, progress=False, state=sys.argv[1], state_every=3)
    from safetensors.torch import save_file
    save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, sys.argv[2])
    print("done")
""")


RUN = {"n": 256, "epochs": 4, "batch_size": 16, "lr": 2e-3, "augment": True, "seed": 0}  # fit's run config


@pytest.mark.slow
def test_sigkill_mid_run_resumes_and_never_leaves_a_partial_file(tmp_path):
    """Kill the training process with SIGKILL at several moments (some while a state is being written),
    check that whatever is under the final name is a complete state, then let it finish: the weights
    equal those of an uninterrupted run of the same 64 steps. The uninterrupted run is the same script in a
    process of its own, so both sides train with the same thread and determinism settings (the script sets
    them) whatever the environment pytest runs in."""
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)))
    state, final = tmp_path / "run.state.safetensors", tmp_path / "final.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    resumed_from = []
    for delay in (0.0, 0.13, 0.05, 0.21):  # seconds after a new state appears
        before = state.stat().st_mtime_ns if state.exists() else 0
        proc = subprocess.Popen([sys.executable, str(script), str(state), str(final)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while not (state.exists() and state.stat().st_mtime_ns != before):  # wait for this run's first save
            assert proc.poll() is None and time.monotonic() < deadline, "the child ended or hung before saving"
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
        assert proc.returncode == -signal.SIGKILL, out
        resumed_from += [int(line.split()[3]) for line in out.splitlines() if line.startswith("resuming from step")]
        if state.exists():  # whatever is under the final name is a complete state of this run
            model = tiny_model()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a CheckpointWarning (unreadable, other run) fails the test
                step, extra = load_state(state, model, torch.optim.AdamW(model.parameters()), config=RUN)
            assert 0 < step <= 64 and len(extra["losses"]) == step
    done = subprocess.run([sys.executable, str(script), str(state), str(final)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "done" in done.stdout, done.stdout + done.stderr
    last = [int(line.split()[3]) for line in done.stdout.splitlines() if line.startswith("resuming from step")]
    assert last and last[0] > 0, done.stdout
    assert resumed_from and resumed_from == sorted(resumed_from), resumed_from  # each restart went further

    reference_final = tmp_path / "reference.safetensors"
    uninterrupted = subprocess.run([sys.executable, str(script), str(tmp_path / "other.state.safetensors"),
                                    str(reference_final)], env=env, capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0 and "resuming" not in uninterrupted.stdout, uninterrupted.stdout
    weights, reference = load_file(str(final)), load_file(str(reference_final))
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], v) for k, v in reference.items())
    assert not list(tmp_path.glob(".run.state.safetensors.tmp*"))  # temp files of killed writes were cleaned up


def test_run_steps_resumes_to_the_same_weights(tmp_path):
    """``course_lib.training.run_steps`` (the generative chapters' shipped runs): a run interrupted after step 5
    and started again with the same arguments ends with exactly the weights of an uninterrupted run."""
    from course_lib.training import run_steps

    torch.set_num_threads(1)
    data = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def loss_of(model, fail_at=None):
        calls = {"n": 0}

        def batch_loss(g):
            calls["n"] += 1
            if fail_at is not None and calls["n"] == fail_at:
                raise KeyboardInterrupt
            x = data[torch.randint(64, (16,), generator=g)]
            return (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        return batch_loss

    whole = make()
    ref = run_steps(whole, 9, loss_of(whole), 1e-2, clip_grad=1.0, progress=False)
    state = tmp_path / "run.safetensors"
    first = make()
    with pytest.raises(KeyboardInterrupt):
        run_steps(first, 9, loss_of(first, fail_at=6), 1e-2, clip_grad=1.0, state=state, state_every=2, progress=False)
    resumed = make()
    out = run_steps(resumed, 9, loss_of(resumed), 1e-2, clip_grad=1.0, state=state, state_every=2, progress=False)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert out["losses"] == ref["losses"] and len(out["losses"]) == 9
