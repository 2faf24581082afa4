"""Chapter 09 (GAN theory, numerically): Goodfellow et al. 2014 checked on 1-D and 2-D distributions.

- ``theory``  densities on a grid: D* (Prop. 1), the value V (Eq. 1), C(G) = -log 4 + 2 JSD (Thm. 1), KL, JSD
- ``toy``     the 2-D ring of Gaussians, MLP G and D, the discriminator and the two generator losses
- ``config``  notebook 09's sizes per profile; ``checks`` its exercises
"""
