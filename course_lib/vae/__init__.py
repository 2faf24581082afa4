"""Chapter 07-08: variational autoencoders (VAE, hierarchical VAE) and the VQ-VAE tokenizer.

Modules: ``vae`` (Gaussian KL, Bernoulli likelihood, ELBO, IWAE, the plain AE and the VAE, their checkpoints),
``hierarchical`` (a Markovian hierarchical VAE with two latent levels), ``vq`` (the vector quantizer, the
VQ-VAE and ``load_tokenizer``), ``config`` (notebook 07's sizes per profile), ``checks`` and ``vq_checks``
(the exercises of notebooks 07 and 08).
"""
