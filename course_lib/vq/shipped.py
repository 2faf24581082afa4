"""Chapter 08's shipped checkpoints (``python -m course_lib checkpoints``): the VQ-VAE tokenizer and its no-fix
twin."""

from __future__ import annotations


def _vq(name: str):
    def make():
        from course_lib.vq import train, vqvae

        return vqvae.build_vqvae(), lambda m: train.train_vqvae(m, train.SHIPPED[name])
    return make


CHECKPOINTS = {name: _vq(name) for name in ("vq_tokenizer", "vq_tokenizer_nofix")}
