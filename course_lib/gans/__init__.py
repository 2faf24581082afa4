"""Chapters 09-10: GANs, from the theory on 1-D and 2-D densities to DCGAN, Progressive GAN and StyleGAN.

Notebook 09 (Goodfellow et al. 2014 checked numerically):

- ``theory``  densities on a grid: D* (Prop. 1), the value V (Eq. 1), C(G) = -log 4 + 2 JSD (Thm. 1), KL, JSD
- ``toy``     the 2-D ring of Gaussians, MLP G and D, the discriminator and the two generator losses
- ``config``  notebook 09's sizes per profile; ``checks`` its exercises

Notebook 10 (image GANs on Fashion-MNIST, images in [-1, 1] inside the GANs):

- ``dcgan``    DCGAN's G and D, ``to_gan`` / ``to_unit``
- ``progan``   Progressive GAN: fade-in, minibatch std, equalized learning rate, pixel norm; its G and D
- ``stylegan`` StyleGAN: mapping network, AdaIN, per-layer noise, style mixing, truncation
- ``train``    one D step, one G step (R1 penalty optional), EMA of G, sampling; the resumable run
- ``shipped``  the three shipped generators and ``load_generator``
- ``image_config`` notebook 10's sizes per profile; ``image_checks`` its exercises
"""
