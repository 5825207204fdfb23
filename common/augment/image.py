"""Batched augmentations for images of shape (B, C, H, W) with values in [0, 1].

A torchvision-free version of SimCLR's image pipeline (Chen et al. 2020): random resized
crop, horizontal flip, brightness/contrast jitter, Gaussian blur and noise. Everything is a
tensor op over the whole batch (affine_grid/grid_sample, grouped convolutions), so it runs
unchanged on CPU and GPU. Colour-specific ops (hue, saturation, greyscale) are left out: the
bundled data sets are greyscale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.augment.random import rand, randn


class ImageAugment(nn.Module):
    """Random view of a batch of images; same shape out, values clamped to [0, 1].

    Order: resized crop (+ flip), brightness, contrast, blur, noise. Defaults are milder than
    ImageNet SimCLR (crop area >= 0.4 instead of 0.08) because the images are tiny (8x8 digits,
    28x28 Fashion-MNIST) and an 8% crop of an 8x8 image is a couple of pixels.
    """

    def __init__(
        self,
        crop_min_area: float = 0.4,
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        brightness: float = 0.4,
        contrast: float = 0.4,
        blur_p: float = 0.2,
        blur_sigma: tuple[float, float] = (0.1, 1.0),
        noise_std: float = 0.02,
    ) -> None:
        super().__init__()
        if not 0.0 < crop_min_area <= 1.0:
            raise ValueError(f"crop_min_area must be in (0, 1], got {crop_min_area}")
        if not 0.0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"crop_ratio must be increasing and positive, got {crop_ratio}")
        if not (0.0 <= flip_p <= 1.0 and 0.0 <= blur_p <= 1.0):
            raise ValueError("flip_p and blur_p must be probabilities")
        if brightness < 0 or contrast < 0 or noise_std < 0:
            raise ValueError("brightness, contrast and noise_std must be >= 0")
        self.crop_min_area = crop_min_area
        self.crop_ratio = crop_ratio
        self.flip_p = flip_p
        self.brightness = brightness
        self.contrast = contrast
        self.blur_p = blur_p
        self.blur_sigma = blur_sigma
        self.noise_std = noise_std

    @classmethod
    def with_strength(cls, strength: float) -> ImageAugment:
        """The calibrated defaults with every strength scaled by ``strength`` (1 = unchanged).

        The crop scales its range of areas (1 - crop_min_area), clipped to keep 5 % of the
        image; brightness, contrast and noise scale linearly, the blur probability too (at
        most 1). The flip is not a strength and stays.
        """
        d = cls()
        return cls(
            crop_min_area=max(1.0 - (1.0 - d.crop_min_area) * strength, 0.05),
            brightness=d.brightness * strength,
            contrast=d.contrast * strength,
            blur_p=min(d.blur_p * strength, 1.0),
            noise_std=d.noise_std * strength,
        )

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"ImageAugment expects (B, C, H, W), got shape {tuple(x.shape)}")
        x = self.resized_crop_flip(x, generator)
        if self.brightness > 0:
            x = self.adjust_brightness(x, generator)
        if self.contrast > 0:
            x = self.adjust_contrast(x, generator)
        if self.blur_p > 0:
            x = self.blur(x, generator)
        if self.noise_std > 0:
            x = x + self.noise_std * randn(tuple(x.shape), generator, x.device).to(x.dtype)
        return x.clamp(0.0, 1.0)

    def resized_crop_flip(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Crop a random box (area, aspect ratio), resize it to H x W, mirror with prob flip_p."""
        b = x.shape[0]
        dev = x.device
        area = self.crop_min_area + (1.0 - self.crop_min_area) * rand((b,), generator, dev)
        lo, hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = torch.exp(lo + (hi - lo) * rand((b,), generator, dev))
        w = (area * ratio).sqrt().clamp(max=1.0)  # box size as a fraction of the image side
        h = (area / ratio).sqrt().clamp(max=1.0)
        cx = (1.0 - w) * (2.0 * rand((b,), generator, dev) - 1.0)  # centre in [-1, 1] coords
        cy = (1.0 - h) * (2.0 * rand((b,), generator, dev) - 1.0)
        flip = torch.where(rand((b,), generator, dev) < self.flip_p, -1.0, 1.0)
        zero = torch.zeros_like(w)
        theta = torch.stack([w * flip, zero, cx, zero, h, cy], dim=1).view(b, 2, 3).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def adjust_brightness(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Scale intensities by a factor in [1 - brightness, 1 + brightness], as torchvision."""
        f = 1.0 + self.brightness * (2.0 * rand((x.shape[0], 1, 1, 1), generator, x.device) - 1.0)
        return (x * f.to(x.dtype)).clamp(0.0, 1.0)

    def adjust_contrast(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Blend with the image mean by a factor in [1 - contrast, 1 + contrast]."""
        f = 1.0 + self.contrast * (2.0 * rand((x.shape[0], 1, 1, 1), generator, x.device) - 1.0)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (mean + f.to(x.dtype) * (x - mean)).clamp(0.0, 1.0)

    def blur(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Separable 3x3 Gaussian blur with a per-image sigma, applied with probability blur_p."""
        b, c, hgt, wid = x.shape
        dev = x.device
        lo, hi = self.blur_sigma
        sigma = lo + (hi - lo) * rand((b, 1), generator, dev)
        taps = torch.tensor([-1.0, 0.0, 1.0], device=dev).view(1, 3)
        k = torch.exp(-(taps**2) / (2.0 * sigma**2))
        k = k / k.sum(dim=1, keepdim=True)
        identity = torch.tensor([0.0, 1.0, 0.0], device=dev).view(1, 3)
        k = torch.where(rand((b, 1), generator, dev) < self.blur_p, k, identity)
        k = k.repeat_interleave(c, dim=0).to(x.dtype)  # (B*C, 3): one kernel per channel
        y = x.reshape(1, b * c, hgt, wid)
        y = F.conv2d(F.pad(y, (1, 1, 0, 0), mode="replicate"), k.view(b * c, 1, 1, 3), groups=b * c)
        y = F.conv2d(F.pad(y, (0, 0, 1, 1), mode="replicate"), k.view(b * c, 1, 3, 1), groups=b * c)
        return y.view(b, c, hgt, wid)
