"""Chapter 07's shipped checkpoints (``python -m course_lib checkpoints``): the AE and VAEs and the hierarchical
VAE. (Chapter 08's VQ-VAE tokenizers are declared in ``course_lib/vq/shipped.py``.)"""

from __future__ import annotations


def _vae(name: str):
    def make():
        from course_lib.vae import vae

        return vae.build(name), lambda m: vae.train_model(m, vae.SHIPPED[name].train)
    return make


def _hvae():
    from course_lib.vae import hierarchical, vae

    return hierarchical.build_hvae(), lambda m: vae.train_model(m, hierarchical.SHIPPED)


CHECKPOINTS = {
    **{name: _vae(name) for name in ("ae_latent2", "vae_latent2", "vae_latent16")},
    "hvae_2level": _hvae,
}
