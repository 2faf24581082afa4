"""The loss a diffusion model must beat: the best *linear* noise predictor, which is optimal for Gaussian data with
the data's mean and covariance.

For data of covariance with eigenvalues l_i (d dimensions), x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the best
linear eps-predictor has mean squared error (per dimension)

    mean_i  abar_t l_i / (abar_t l_i + 1 - abar_t),

and L_simple samples t uniformly, so the baseline is its mean over t. A denoiser whose loss sits near it has learned
little beyond the covariance, and samples look like Gaussian samples (blobs). Chapter 13's pixel ddpm ends about
50 % below its baseline.

    python benchmarks/linear_denoiser_baseline.py            # pixels ([-1, 1]) and the ldm_text latents
"""

from __future__ import annotations

import torch

from course_lib.diffusion import NoiseSchedule


def linear_baseline(x: torch.Tensor, schedule: NoiseSchedule | None = None) -> dict[str, float]:
    """x (N, ...) samples of the data the model is trained on -> the baseline's MSE, over all t and t ranges."""
    x = x.flatten(1).double()
    eig = torch.linalg.eigvalsh(torch.cov((x - x.mean(0)).T)).clamp_min(0)             # (d,)
    abar = (schedule or NoiseSchedule()).alpha_bar.double()                             # (T,)
    mse = (abar[:, None] * eig / (abar[:, None] * eig + 1 - abar[:, None])).mean(1)    # (T,)
    return {"all t": float(mse.mean()), "t < 300": float(mse[:300].mean()), "t >= 600": float(mse[600:].mean()),
            "top eigenvalue": float(eig.max()), "total variance": float(eig.sum())}


def main() -> None:
    from course_lib.data import fashion_mnist
    from course_lib.guidance.shipped import caption_latents

    import time
    from pathlib import Path

    from results_file import write

    pixels = fashion_mnist("train").images[:20_000] * 2 - 1
    z = caption_latents(20_000, "train", seed=0)[0]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "n": 20_000}
    for name, data in (("pixels in [-1, 1] (ddpm)", pixels), ("tokenizer latents / std (ldm_text)", z / z.std())):
        result[name] = {k: round(v, 5) for k, v in linear_baseline(data).items()}
    write(Path(__file__).resolve().parent / "results" / "linear_denoiser_baseline.json", result)


if __name__ == "__main__":
    main()
