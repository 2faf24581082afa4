"""Chapters 07-08's shipped checkpoints (``python -m course_lib checkpoints``): the AE and VAEs, the hierarchical
VAE, and the VQ-VAE tokenizer with its no-fix twin."""

from __future__ import annotations


def _vae(name: str):
    def make():
        from course_lib.vae import vae

        return vae.build(name), lambda m: vae.train_model(m, vae.SHIPPED[name].train)
    return make


def _hvae():
    from course_lib.vae import hierarchical, vae

    return hierarchical.build_hvae(), lambda m: vae.train_model(m, hierarchical.SHIPPED)


def _vq(name: str):
    def make():
        from course_lib.vae import vq

        return vq.build_vqvae(), lambda m: vq.train_vqvae(m, vq.SHIPPED[name])
    return make


CHECKPOINTS = {
    **{name: _vae(name) for name in ("ae_latent2", "vae_latent2", "vae_latent16")},
    "hvae_2level": _hvae,
    **{name: _vq(name) for name in ("vq_tokenizer", "vq_tokenizer_nofix")},
}
