"""The second kernel set: `make test` runs the kernel-vs-oracle tests again under ATEN_CPU_CAPABILITY=default
(PyTorch's plain C++ kernels instead of the AVX2/AVX-512 ones) and two threads, as another CPU would. These
tests check that the setting is really in effect and really changes the kernels used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

PROBE = textwrap.dedent("""
    import hashlib, json, torch
    torch.manual_seed(0)
    x = torch.randn(4096)
    w, im = torch.randn(8, 3, 5, 5), torch.randn(2, 3, 32, 32)
    outs = {"exp": x.exp(), "tanh": x.tanh(), "softmax": x.view(64, 64).softmax(-1), "sum": x.view(64, 64).sum(-1),
            "conv": torch.nn.functional.conv2d(im, w)}
    print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                      "digests": {k: hashlib.sha1(v.numpy().tobytes()).hexdigest() for k, v in outs.items()}}))
""")


def probe(**env) -> dict:
    import json

    base = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def test_the_requested_kernel_set_and_threads_are_in_effect():
    asked = os.environ.get("ATEN_CPU_CAPABILITY")
    if asked:
        assert torch.backends.cpu.get_cpu_capability() == asked.upper()
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        assert torch.get_num_threads() == int(threads)


def test_the_default_kernel_set_computes_differently():
    """Bit-different results for the same ops: the default kernel set is a second path, not the same one."""
    native, plain = probe(), probe(ATEN_CPU_CAPABILITY="default")
    assert plain["capability"] == "DEFAULT"
    if native["capability"] == "DEFAULT":  # a CPU without AVX2: both runs are the same kernels
        assert native["digests"] == plain["digests"]
        return
    differ = [k for k in native["digests"] if native["digests"][k] != plain["digests"][k]]
    assert differ, "ATEN_CPU_CAPABILITY=default changed no result bit: the second run tests nothing new"
    print(f"{native['capability']} vs DEFAULT: {', '.join(differ)} differ")
