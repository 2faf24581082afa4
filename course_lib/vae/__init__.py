"""Chapter 07: variational autoencoders (VAE, hierarchical VAE).

Modules: ``kernels`` (reparameterisation, Gaussian KL, Bernoulli likelihood, ELBO, IWAE), ``models`` (the plain AE
and the VAE), ``train`` (a training step, ``train_model``, ``evaluate``), ``vae`` (the shipped AE and VAEs by name,
and the one import point re-exporting the three), ``hierarchical`` (a Markovian hierarchical VAE with two latent
levels), ``config`` (notebook 07's sizes per profile), ``checks`` (notebook 07's exercises), ``shipped`` (its
checkpoints for ``python -m course_lib checkpoints``). Notebook 08's VQ-VAE lives in ``course_lib.vq``.
"""
