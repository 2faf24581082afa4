"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2013, "Deep Inside Convolutional Networks").

Sec. 3 of the paper: near an image I0 the class score is almost linear in the image,

    S_c(I) ~ w^T I + b                      (Eq. 2)
    w = dS_c / dI  evaluated at I0          (Eq. 3)

so the magnitude of w says which pixels need to change least to change the score most. Sec. 3.1 turns w
into a map with one number per pixel: M_ij = max_c |w_h(i, j, c)| (the maximum over colour channels).
w is one backward pass: a plain gradient, ReLU derivatives and max-pool switches included.

The input checks shared by the chapter's kernels live at the bottom of this file.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def saliency(model: nn.Module, x: Tensor, target: int | Tensor) -> Tensor:
    """Saliency maps M (N, H, W) for images x (N, C, H, W) and class ``target`` (an int or (N,) int64).

    M_ij = max_c |dS_target / dx_cij| (Sec. 3.1, Eq. 3), S = the model's logit (the score before softmax).
    Put the model in eval mode first (dropout and batch norm would mix the batch otherwise).
    """
    check_batch(x, model=model)
    N, C, H, W = x.shape
    check_target(target, N)
    x = x.detach().clone().requires_grad_(True)
    scores = model(x)                                              # (N, K)
    target = check_target(target, N, x.device, num_classes=scores.shape[1])
    score = scores.gather(1, target[:, None]).sum()                # images are independent: one backward
    (w,) = torch.autograd.grad(score, x)                           # (N, C, H, W): Eq. 3
    return w.abs().amax(dim=1)                                     # (N, H, W): max over channels


# ----------------------------------------------------------------------------------------------
# Input checks shared by the chapter's kernels: wrong shapes fail early, with the expected shape.

def check_batch(x: Tensor, name: str = "x", model: nn.Module | None = None) -> None:
    """Raise a ValueError unless ``x`` is a float tensor (N, C, H, W), of the dtype of ``model``'s parameters
    when a model is given (a float64 batch into a float32 model fails deep inside the first layer)."""
    dtype = next((p.dtype for p in model.parameters()), None) if model is not None else None
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point() or dtype not in (None, x.dtype):
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected {name} of shape (N, C, H, W) float{f' ({dtype}, as the model)' if dtype else ''}, "
                         f"got {got}")


def check_target(target: int | Tensor, n: int, device: torch.device | str = "cpu",
                 num_classes: int | None = None) -> Tensor:
    """The class index per image as an int64 tensor (n,), from an int or an integer tensor (n,), each in
    0..num_classes-1 when ``num_classes`` is given."""
    if isinstance(target, int) and not isinstance(target, bool):
        out = torch.full((n,), target, dtype=torch.int64, device=device)
    elif (isinstance(target, Tensor) and tuple(target.shape) == (n,) and not target.is_floating_point()
            and not target.is_complex() and target.dtype != torch.bool):
        out = target.to(device=device, dtype=torch.int64)
    else:
        got = f"{tuple(target.shape)} {target.dtype}" if isinstance(target, Tensor) else repr(target)
        raise ValueError(f"expected target an int or an int64 tensor of shape ({n},), got {got}")
    if num_classes is not None and len(out) and not (0 <= int(out.min()) and int(out.max()) < num_classes):
        raise ValueError(f"expected target an int or an int64 tensor of shape ({n},) in 0..{num_classes - 1} "
                         f"(the model's classes), got {target.tolist() if isinstance(target, Tensor) else target}")
    return out


def check_layer(model: nn.Module, layer: nn.Module) -> str:
    """The name of ``layer`` inside ``model``; a ValueError when it is not one of its modules."""
    for name, module in model.named_modules():
        if module is layer:
            return name
    raise ValueError(f"expected layer to be a module of the model (e.g. model.conv[4]), got {type(layer).__name__}")
