"""Chapter 06: autoencoders -- a bottleneck, then the ways to make an unconstrained one learn something.

Papers, one idea each:

- Baldi & Hornik 1989, "Neural networks and principal component analysis": a linear autoencoder trained
  with squared error spans the principal subspace (checked with ``principal_angles``, Björck & Golub 1973).
- Vincent et al. 2008, "Extracting and composing robust features with denoising autoencoders", and 2010,
  "Stacked denoising autoencoders" (Sec. 4.2): reconstruct x from a corrupted x~ (``mask_noise``,
  ``gaussian_noise``).
- Ng 2011, "Sparse autoencoder" (CS294A lecture notes): ``kl_sparsity`` = sum_j KL(rho || rho_hat_j).
- Makhzani & Frey 2013, "k-Sparse Autoencoders": ``k_sparse`` keeps the k largest code units.
- Rifai et al. 2011, "Contractive Auto-Encoders: Explicit invariance during feature extraction", Eq. 2:
  ``contractive_penalty`` = ||J_f(x)||_F^2, and its closed form for a sigmoid layer.

``models.Autoencoder`` is the one model class (linear, MLP, over-complete, k-sparse by its arguments);
``models.train_step`` takes one step on ``models.loss_terms``; the notebook owns the loop.
Each kernel is compared with scipy, torch.distributions or torch.func in ``tests/test_autoencoders.py``;
``checks`` holds notebook 06's exercises.
"""

from course_lib.autoencoders.kernels import (
    contractive_penalty,
    fraction_active,
    gaussian_noise,
    jacobian_sq_norms,
    k_sparse,
    kl_sparsity,
    mask_noise,
    principal_angles,
    sigmoid_contractive_penalty,
)
from course_lib.autoencoders.models import Autoencoder, encode_all, loss_terms, reconstruction_mse, train_step

__all__ = [
    "Autoencoder",
    "contractive_penalty",
    "encode_all",
    "fraction_active",
    "gaussian_noise",
    "jacobian_sq_norms",
    "k_sparse",
    "kl_sparsity",
    "loss_terms",
    "mask_noise",
    "principal_angles",
    "reconstruction_mse",
    "sigmoid_contractive_penalty",
    "train_step",
]
