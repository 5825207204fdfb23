"""Small 1D CNN encoder for multichannel sensor windows (B, C, L) -> (B, out_dim)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ConvBlock1d(nn.Module):
    """Conv -> GroupNorm -> ReLU (-> max-pool by 2).

    GroupNorm instead of BatchNorm: no running statistics, so the block has no buffers and
    federated averaging touches parameters only (no BN statistics to mix across clients).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, groups: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.GroupNorm(_num_groups(c_out, groups), c_out)
        self.act = nn.ReLU(inplace=True)
        self.pool: nn.Module = nn.MaxPool1d(2) if pool else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.norm(self.conv(x))))


def _num_groups(channels: int, wanted: int) -> int:
    """Largest divisor of `channels` not above `wanted` (GroupNorm needs an exact split)."""
    g = max(1, min(wanted, channels))
    while channels % g:
        g -= 1
    return g


class CNN1DEncoder(nn.Module):
    """Four conv blocks with max-pooling between them, then global pooling.

    At the defaults (in_channels=6) it has about 85.6k parameters and no buffers. Pooling by 2
    after each of the first three blocks keeps it cheap on CPU (the last blocks see L/8) while
    the receptive field still covers most of a 128-sample window. `pool="avgmax"` concatenates
    global average and max pooling (out_dim = 2 * widths[-1]); max pooling keeps the peaks that
    distinguish dynamic activities, average pooling the posture (gravity) level.
    """

    def __init__(
        self,
        in_channels: int = 6,
        widths: Sequence[int] = (32, 64, 128, 128),
        kernel_sizes: Sequence[int] = (5, 5, 3, 3),
        norm_groups: int = 8,
        pool: str = "avgmax",
    ) -> None:
        super().__init__()
        widths, kernel_sizes = tuple(widths), tuple(kernel_sizes)
        if len(widths) == 0 or len(widths) != len(kernel_sizes):
            raise ValueError(f"widths {widths} and kernel_sizes {kernel_sizes} must match")
        if pool not in ("avg", "max", "avgmax"):
            raise ValueError(f"pool must be 'avg', 'max' or 'avgmax', got {pool!r}")
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i, (w, k) in enumerate(zip(widths, kernel_sizes, strict=True)):
            blocks.append(ConvBlock1d(c_in, w, k, norm_groups, pool=i < len(widths) - 1))
            c_in = w
        self.blocks = nn.Sequential(*blocks)
        self.in_channels = in_channels
        self.pool = pool
        self.out_dim: int = widths[-1] * (2 if pool == "avgmax" else 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(x)
        if self.pool == "avg":
            return h.mean(dim=2)
        if self.pool == "max":
            return h.amax(dim=2)
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
