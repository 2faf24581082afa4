"""Our DDPM (course_lib.diffusion: UNet + NoiseSchedule + DDIM) against diffusers (UNet2DModel + DDPMScheduler +
DDIMScheduler) at about the same parameter count, on the same data, for the same wall-clock, on this machine.

    python benchmarks/ddpm_vs_diffusers.py [--minutes 10] [--n-fid 1000] [--threads 1]
                                           [--out benchmarks/results/ddpm_vs_diffusers.json]

Both train with the same recipe as the shipped checkpoint (course_lib/diffusion/shipped.py: batch 64, Adam lr 5e-4
after 200 warm-up steps, gradient clipping at 1, EMA 0.999, Ho et al.'s linear schedule with T = 1,000) for
``--minutes`` of training each, one after the other, then draw ``--n-fid`` DDIM-50 samples from the EMA weights
(each with its own library's sampler) and take the FID on the course judge against as many test images.
Written: steps/s, steps, FID, and the ratios ours / reference (throughput: >= 1 means ours is faster;
FID: <= 1 means ours is better). Run it on an idle machine: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import metrics  # noqa: E402
from course_lib.data import fashion_mnist  # noqa: E402
from course_lib.diffusion import NoiseSchedule  # noqa: E402
from course_lib.diffusion.shipped import SHIPPED, build_unet  # noqa: E402
from course_lib.diffusion.train import sample_ddim, to_model, to_unit  # noqa: E402
from course_lib.training import ema_update  # noqa: E402
from results_file import write  # noqa: E402


def reference_unet():
    """diffusers' UNet2DModel laid out like ours: widths (16, 32, 64), two ResNet blocks per level, attention at 7x7."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(16, 32, 64),
                       layers_per_block=2, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                       attention_head_dim=16)


def train_for(model, add_noise, minutes: float, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """Train eps-prediction for ``minutes`` of wall-clock; return the EMA copy and {'steps', 'steps_per_s'}."""
    cfg = SHIPPED["ddpm"]
    images = to_model(fashion_mnist("train").images)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 60 * minutes:
        x0 = images[torch.randint(len(images), (cfg.batch_size,), generator=gen)]
        t = torch.randint(0, cfg.T, (cfg.batch_size,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        out = model(add_noise(x0, eps, t), t)
        loss = (getattr(out, "sample", out) - eps).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        warm.step()
        ema_update(ema, model, cfg.ema_decay)
        steps += 1
    seconds = time.perf_counter() - start
    return ema, {"steps": steps, "train_seconds": round(seconds, 1), "steps_per_s": round(steps / seconds, 3)}


@torch.no_grad()
def reference_samples(unet, n: int, seed: int = 1, batch_size: int = 500) -> torch.Tensor:
    """n DDIM-50 samples in [0, 1] with diffusers' DDIMScheduler (eta 0)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=SHIPPED["ddpm"].T, beta_start=1e-4, beta_end=0.02,
                          clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(50)
    gen, out = torch.Generator().manual_seed(seed), []
    for i in range(0, n, batch_size):
        x = torch.randn((min(batch_size, n - i), 1, 28, 28), generator=gen)
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x).prev_sample
        out.append(to_unit(x))
    return torch.cat(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--n-fid", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ddpm_vs_diffusers.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import DDPMScheduler

    real = fashion_mnist("test").subset(args.n_fid, seed=0).images
    schedule = NoiseSchedule(SHIPPED["ddpm"].T)
    ref_sched = DDPMScheduler(num_train_timesteps=SHIPPED["ddpm"].T, beta_start=1e-4, beta_end=0.02)
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "minutes_each": args.minutes, "n_fid": args.n_fid, "sampler": "DDIM-50, eta 0, EMA weights"}
    for name, model, add_noise, sampler in [
        ("ours", build_unet(), lambda x0, eps, t: schedule.q_sample(x0, t, eps),
         lambda m: sample_ddim(m, schedule, args.n_fid, steps=50, seed=1)),
        ("diffusers", reference_unet(), lambda x0, eps, t: ref_sched.add_noise(x0, eps, t),
         lambda m: reference_samples(m, args.n_fid, seed=1)),
    ]:
        params = sum(p.numel() for p in model.parameters())
        ema, row = train_for(model, add_noise, args.minutes)
        start = time.perf_counter()
        samples = sampler(ema)
        row |= {"params": params, "sample_seconds": round(time.perf_counter() - start, 1),
                "fid": round(metrics.fid(samples, real), 3)}
        result[name] = row
        print(name, row, flush=True)
    result["throughput_ratio"] = round(result["ours"]["steps_per_s"] / result["diffusers"]["steps_per_s"], 3)
    result["fid_ratio"] = round(result["ours"]["fid"] / result["diffusers"]["fid"], 3)
    write(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
