"""Notebook 11's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class TranslationConfig:
    steps: int          # steps (batch 32) of the pix2pix and the L1-only U-Net trained in the notebook's visible loop
    munit_steps: int    # steps (batch 16) of the MUNIT trained in the notebook's visible loop
    n_train: int        # training pairs (and images per unpaired domain) those loops draw from
    n_test: int         # test pairs for the test L1, the FIDs (against as many real test images) and the judge
    n_div: int          # edge maps whose outputs under several styles give the diversity
    n_styles: int       # style codes per edge map for the diversity


CONFIGS = {
    "smoke": TranslationConfig(steps=6, munit_steps=2, n_train=200, n_test=100, n_div=10, n_styles=3),
    "cpu": TranslationConfig(steps=500, munit_steps=100, n_train=5_000, n_test=2_000, n_div=200, n_styles=8),
    "gpu": TranslationConfig(steps=5_000, munit_steps=2_000, n_train=20_000, n_test=5_000, n_div=500, n_styles=8),
}


def translation_config(profile: str = "auto", **overrides) -> TranslationConfig:
    return pick(CONFIGS, profile, **overrides)
