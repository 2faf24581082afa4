"""Notebooks 19-20's sizes per profile (shown in their parameters cells)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class DALLENotebookConfig:
    train_steps: int          # steps of the notebook's visible training loop (a fresh DALL-E, batch 64)
    n_eval: int               # test captions sampled and graded per sampling setting
    n_rerank: int             # test captions of the reranking experiment
    candidates: int           # samples per caption that CLIP reranks
    settings: tuple[tuple[float, int | None], ...]   # (temperature, top_k) pairs of the sampling sweep


DALLE_CONFIGS = {
    "smoke": DALLENotebookConfig(train_steps=3, n_eval=20, n_rerank=10, candidates=2, settings=((1.0, None), (1.0, 16))),
    "cpu": DALLENotebookConfig(train_steps=100, n_eval=500, n_rerank=200, candidates=8,
                               settings=((1.0, None), (1.0, 32), (0.7, None), (0.7, 8))),
    "gpu": DALLENotebookConfig(train_steps=6_000, n_eval=2_000, n_rerank=1_000, candidates=16,
                               settings=((1.0, None), (1.0, 32), (0.7, None), (0.7, 8))),
}


def dalle_notebook_config(profile: str = "auto", **overrides) -> DALLENotebookConfig:
    return pick(DALLE_CONFIGS, profile, **overrides)


@dataclass
class UnCLIPNotebookConfig:
    train_steps: int          # steps of the notebook's visible CLIP training loop (batch 128)
    n_eval: int               # test pairs for zero-shot accuracy and retrieval
    n_samples: int            # captions sampled through prior and decoder, per guidance scale
    sample_steps: int         # DDIM steps of the decoder (the prior always takes 50)
    scales: tuple[float, ...]  # the decoder's classifier-free guidance scales


UNCLIP_CONFIGS = {
    "smoke": UnCLIPNotebookConfig(train_steps=3, n_eval=100, n_samples=10, sample_steps=4, scales=(1.0, 3.0)),
    "cpu": UnCLIPNotebookConfig(train_steps=100, n_eval=10_000, n_samples=300, sample_steps=25, scales=(1.0, 3.0)),
    "gpu": UnCLIPNotebookConfig(train_steps=3_000, n_eval=10_000, n_samples=1_000, sample_steps=50,
                                scales=(1.0, 2.0, 3.0, 5.0)),
}


def unclip_notebook_config(profile: str = "auto", **overrides) -> UnCLIPNotebookConfig:
    return pick(UNCLIP_CONFIGS, profile, **overrides)
