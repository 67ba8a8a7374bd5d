"""Differentiable image augmentations shared by training and the edit losses.

The tiny CLIP is trained on exactly the views that the CLIP losses of the methods show it
(random square crops with small shifts, plus pixel noise), so a method cannot win by
fooling one view: ``clip_views`` is the one definition of those views.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["clip_views", "gaussian_blur", "random_blur"]


def clip_views(
    images: Tensor,
    n_views: int,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.75, 1.0),
    max_shift: float = 0.08,
    noise: float = 0.03,
    out_size: int | None = None,
) -> Tensor:
    """``n_views`` random views of each image: ``[N * n_views, C, S, S]`` (image-major).

    Each view is a square crop of side ``scale`` (fraction of the image side) centred near
    the image centre (offset up to ``max_shift`` of the side, kept inside the image), resized
    back with bilinear sampling, plus Gaussian noise of std ``noise`` (images in [-1, 1]).
    Differentiable with respect to ``images``; deterministic for a seeded ``generator``.
    """
    n, c, h, _w = images.shape
    size = out_size or h
    m = n * n_views
    dev = images.device
    u = torch.rand(m, 3, generator=generator).to(dev)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    room = (1.0 - s).clamp(min=0.0)  # how far the centre may move and stay inside
    shift = torch.minimum(room, torch.full_like(room, 2 * max_shift))
    tx = (u[:, 1] * 2 - 1) * shift
    ty = (u[:, 2] * 2 - 1) * shift
    theta = torch.zeros(m, 2, 3, device=dev, dtype=images.dtype)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    src = images.repeat_interleave(n_views, dim=0)
    grid = F.affine_grid(theta, [m, c, size, size], align_corners=False)
    views = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if noise > 0:
        views = views + noise * _noise_like(views, generator)
    return views


def _noise_like(views: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise of ``views``' shape, on its device. On a CPU it is drawn from
    ``generator`` itself; elsewhere from a generator on that device seeded from it, since
    drawing a full-size pack's views on the CPU and copying them over cost more than the
    rest of an optimisation step (6 views at 1024 px are 19M numbers a step)."""
    if views.device.type == "cpu" or generator is None:
        return torch.randn(views.shape, generator=generator).to(views.device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    on_device = torch.Generator(device=views.device)
    on_device.manual_seed(seed)
    return torch.randn(views.shape, generator=on_device, device=views.device)


def _kernel1d(sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    radius = max(1, int(3.0 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding; ``sigma <= 0`` returns the input."""
    if sigma <= 0:
        return images
    n, c, h, w = images.shape
    k = _kernel1d(sigma, images.device, images.dtype)
    r = (len(k) - 1) // 2
    x = images.reshape(n * c, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect" if r < w else "replicate"),
                 k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect" if r < h else "replicate"),
                 k.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


def random_blur(images: Tensor, max_sigma: float, p: float,
                generator: torch.Generator | None = None) -> Tensor:
    """Blur a random subset (probability ``p`` each) with one sigma drawn per call."""
    pick = torch.rand(len(images), generator=generator) < p
    if not pick.any():
        return images
    sigma = float(0.3 + (max_sigma - 0.3) * torch.rand(1, generator=generator))
    out = images.clone()
    out[pick] = gaussian_blur(images[pick], sigma)
    return out
