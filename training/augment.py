"""Upload-like augmentation: what a photo or scan does to a digit, drawn per image on the batch's device.

The service turns every upload into a 28x28 white-on-black frame; a photo reaches that frame
blurred, noisy, with thicker or thinner strokes than MNIST's pen, sometimes from a much smaller
image and slightly warped. `upload_like` applies each of those with a probability, per image, so
the training frames look like the served ones while most digits stay clean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from training.data import random_affine_theta


@dataclass(frozen=True)
class AugmentConfig:
    """Per-image probabilities and strengths; stored in checkpoints through TrainConfig."""

    p_elastic: float = 0.5
    elastic_alpha: float = 1.5  # displacement in pixels (after smoothing)
    elastic_sigma: float = 4.0  # smoothness of the displacement field, pixels
    p_thickness: float = 0.4
    p_blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 1.3)
    p_lowres: float = 0.15
    lowres_sizes: tuple[int, int] = (10, 20)
    p_noise: float = 0.2
    noise_std: float = 0.08

    def to_dict(self) -> dict:
        return asdict(self)


def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """One normalised 1-D Gaussian per sigma: (N, 2 * radius + 1)."""
    t = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    k = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    return k / k.sum(1, keepdim=True)


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with a different sigma per image; x (N, 1, H, W), sigma (N,)."""
    n, _, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    k = _gaussian_kernels(sigma, radius).to(x.dtype)  # (N, K)
    y = x.reshape(1, n, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=n)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=n)
    return y.reshape(n, 1, h, w)


def elastic_offsets(n: int, size: int, alpha: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Smooth random displacement fields (Simard et al. 2003) in grid units: (N, H, W, 2).

    A coarse random field upsampled bicubically is as smooth as Simard's Gaussian-filtered noise
    at a fraction of the cost; sigma sets the coarse grid's spacing in pixels, alpha the largest
    displacement at its points (bicubic overshoots a little between them).
    """
    coarse = max(2, round(size / sigma))
    field = torch.rand(n, 2, coarse, coarse, generator=generator) * 2 - 1
    field = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=True)
    return (field * alpha * 2 / size).permute(0, 2, 3, 1)


def thickness(x: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """amount in [-1, 1] per image: > 0 blends towards a 3x3 dilation (marker), < 0 towards an erosion."""
    dil = F.max_pool2d(x, 3, stride=1, padding=1)
    ero = -F.max_pool2d(-x, 3, stride=1, padding=1)
    a = amount.view(-1, 1, 1, 1)
    return torch.where(a >= 0, x + a * (dil - x), x + (-a) * (ero - x))


def low_resolution(x: torch.Tensor, size: int) -> torch.Tensor:
    """Down to size x size (area) and back up (bilinear): a digit that came from a small image."""
    h = x.shape[-1]
    small = F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(small, size=(h, h), mode="bilinear", align_corners=False)


def upload_like(x: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Affine + elastic warp in one grid_sample, then thickness, low resolution, blur and noise.

    Each step runs only on the images drawn for it (the cost stays a small share of a training step).
    x: (N, 1, 28, 28) float32 in [0, 1]; returns the same shape and range.
    """
    n, _, h, _ = x.shape

    def chosen(p: float) -> torch.Tensor:
        return torch.nonzero(torch.rand(n, generator=generator) < p).squeeze(1).to(x.device)  # (M,) indices

    # Warp: the base recipe's affine for every image, plus a smooth elastic field for some.
    theta = random_affine_theta(n, generator).to(x.device, x.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, 1, h, h], align_corners=False)  # (N, H, W, 2)
    idx = chosen(cfg.p_elastic)
    if len(idx):
        offsets = elastic_offsets(len(idx), h, cfg.elastic_alpha, cfg.elastic_sigma, generator)
        grid[idx] += offsets.to(x.device, x.dtype)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    idx = chosen(cfg.p_thickness)
    if len(idx):
        amount = (torch.rand(len(idx), generator=generator) * 2 - 0.6).clamp(-1, 1)  # thicker more often
        x[idx] = thickness(x[idx], amount.to(x.device, x.dtype))
    idx = chosen(cfg.p_lowres)
    if len(idx):
        size = int(torch.randint(cfg.lowres_sizes[0], cfg.lowres_sizes[1] + 1, (1,), generator=generator))
        x[idx] = low_resolution(x[idx], size)
    idx = chosen(cfg.p_blur)
    if len(idx):
        lo, hi = cfg.blur_sigma
        sigma = torch.rand(len(idx), generator=generator) * (hi - lo) + lo
        blurred = blur(x[idx], sigma.to(x.device, x.dtype))
        x[idx] = blurred / blurred.amax((2, 3), keepdim=True).clamp_min(1e-3)  # framing stretches ink to 1
    idx = chosen(cfg.p_noise)
    if len(idx):
        std = torch.rand(len(idx), 1, 1, 1, generator=generator) * cfg.noise_std
        x[idx] += (torch.randn((len(idx), 1, h, h), generator=generator) * std).to(x.device, x.dtype)
    return x.clamp_(0.0, 1.0)
