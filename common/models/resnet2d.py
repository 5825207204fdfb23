"""Small residual CNN for images (B, C, H, W) -> (B, out_dim), from 8x8 digits to 28x28."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def _gn(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `groups` that divides `channels`."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class BasicBlock2d(nn.Module):
    """He et al. 2016 basic block (two 3x3 convs + identity/projection shortcut), GroupNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _gn(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _gn(c_out, groups)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _gn(c_out, groups)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.act(h + self.shortcut(x))


class ResNet2DEncoder(nn.Module):
    """3x3 stem, then one basic block per stage (stride 1, 2, 2), global average pooling.

    GroupNorm everywhere, so there are no buffers to federate. Padding keeps every stage valid
    for 8x8 inputs (8 -> 8 -> 4 -> 2) as well as 28x28 (28 -> 28 -> 14 -> 7). About 0.3M
    parameters at the defaults.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64, 128),
        blocks_per_stage: int = 1,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if len(widths) == 0 or blocks_per_stage < 1:
            raise ValueError("need at least one stage and one block per stage")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            _gn(widths[0], norm_groups),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        c_in = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock2d(c_in, w, stride, norm_groups))
                c_in = w
        self.stages = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.out_dim: int = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))
