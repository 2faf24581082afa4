"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning"): the
model, which is the course's tokenizer. Its training and loading are in ``course_lib.vq.train``.

An encoder maps a 28x28 image to a 7x7 grid of vectors z_e (N, D, 7, 7); the quantizer (``quantizer``,
Eq. 1-2) snaps each to its nearest codebook row, so the image becomes 49 discrete tokens; the decoder maps
z_q back to an image. Loss (Eq. 3): the mean squared error (-log p(x | z_q) for a Gaussian of fixed
variance, up to constants) plus ``quantizer.vq_loss`` (beta = 0.25 as in the paper), all means over elements.

The stable API that later chapters (15 latent diffusion, 18 BEiT, 19 DALL-E) use::

    from course_lib.vq import load_tokenizer
    tok = load_tokenizer()            # VQVAE in eval mode, frozen; checkpoint "vq_tokenizer"
    codes = tok.encode_tokens(x)      # (N, 1, 28, 28) in [0, 1] -> (N, 7, 7) int64 in [0, tok.num_codes)
    x_hat = tok.decode_tokens(codes)  # (N, 7, 7) int64 -> (N, 1, 28, 28) in [0, 1]
    z_e = tok.encode(x)               # continuous latents (N, tok.dim, 7, 7); tok.embed(codes) gives z_q
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib.training import check_images
from course_lib.vq.quantizer import VectorQuantizer, nearest_code


class ResBlock(nn.Module):
    """The paper's residual block (Sec. 4.1): x + conv1x1(relu(conv3x3(relu(x)))). (N, C, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class VQVAE(nn.Module):
    """Images (N, 1, 28, 28) in [0, 1] -> (x_hat (N, 1, 28, 28) in [0, 1], vq loss, codes (N, 7, 7)).

    Encoder: two stride-2 convolutions (28 -> 14 -> 7), two residual blocks, a 1x1 conv to D channels.
    Decoder: the mirror image with transposed convolutions, ending in a sigmoid.
    """

    grid = 7  # tokens per side

    def __init__(self, num_codes: int = 128, dim: int = 16, width: int = 32, beta: float = 0.25):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width // 2, 4, stride=2, padding=1), nn.ReLU(),        # (N, w/2, 14, 14)
            nn.Conv2d(width // 2, width, 4, stride=2, padding=1),               # (N, w, 7, 7)
            ResBlock(width), ResBlock(width), nn.ReLU(), nn.Conv2d(width, dim, 1))   # (N, D, 7, 7)
        self.quantizer = VectorQuantizer(num_codes, dim, beta)
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, width, 3, padding=1), ResBlock(width), ResBlock(width), nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), nn.ReLU(),   # (N, w/2, 14, 14)
            nn.ConvTranspose2d(width // 2, 1, 4, stride=2, padding=1), nn.Sigmoid())  # (N, 1, 28, 28)

    def encode(self, x: Tensor) -> Tensor:
        """(N, 1, 28, 28), float, computed in the model's dtype -> z_e (N, D, 7, 7)."""
        check_images(x)
        return self.encoder(x.to(self.quantizer.codebook.dtype))

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (N, D, 7, 7), float, computed in the model's dtype -> x_hat (N, 1, 28, 28) in [0, 1]."""
        if (z_q.ndim != 4 or tuple(z_q.shape[1:]) != (self.dim, self.grid, self.grid)
                or not z_q.is_floating_point()):
            raise ValueError(f"expected float z_q of shape (N, {self.dim}, {self.grid}, {self.grid}), got "
                             f"{tuple(z_q.shape)} {z_q.dtype}")
        return self.decoder(z_q.to(self.quantizer.codebook.dtype))

    def embed(self, codes: Tensor) -> Tensor:
        """codes (N, 7, 7) int64 -> z_q (N, D, 7, 7)."""
        return self.quantizer.embed(codes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_q, loss, codes = self.quantizer(self.encode(x))
        return self.decode(z_q), loss, codes

    @torch.no_grad()
    def encode_tokens(self, x: Tensor) -> Tensor:
        """Images (N, 1, 28, 28) in [0, 1] -> tokens (N, 7, 7) int64 in [0, num_codes)."""
        z_e = self.encode(x)
        z = z_e.permute(0, 2, 3, 1).reshape(-1, self.dim)                 # (N*49, D)
        return nearest_code(z, self.quantizer.codebook).view(len(x), self.grid, self.grid)

    @torch.no_grad()
    def decode_tokens(self, codes: Tensor) -> Tensor:
        """Tokens (N, 7, 7) int64 -> images (N, 1, 28, 28) in [0, 1]."""
        if codes.ndim != 3 or tuple(codes.shape[1:]) != (self.grid, self.grid):
            raise ValueError(f"expected codes of shape (N, {self.grid}, {self.grid}), got {tuple(codes.shape)}")
        return self.decode(self.embed(codes))


def build_vqvae() -> VQVAE:
    return VQVAE()
