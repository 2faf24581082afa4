"""Chapter 07: variational autoencoders (VAE, hierarchical VAE).

Modules: ``vae`` (Gaussian KL, Bernoulli likelihood, ELBO, IWAE, the plain AE and the VAE, their checkpoints),
``hierarchical`` (a Markovian hierarchical VAE with two latent levels), ``config`` (notebook 07's sizes per
profile), ``checks`` (notebook 07's exercises), ``shipped`` (its checkpoints). Notebook 08's VQ-VAE lives in
``course_lib.vq``.
"""
