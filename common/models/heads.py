"""MLP heads put on top of an encoder during self-supervised pre-training only."""

from __future__ import annotations

from torch import Tensor, nn

NORMS = ("batch", "layer", "none")


def _norm(kind: str, dim: int) -> nn.Module:
    """Normalisation layer without running statistics (and so without buffers).

    "batch" is BatchNorm1d with track_running_stats=False: it always normalises with the
    current batch's statistics, in train and eval mode alike, and keeps only its affine weights.
    Heads are used only on training batches, so that is never a limitation, and it keeps the
    batch-statistics effect that BYOL's predictor benefits from (Grill et al. 2020).
    """
    if kind == "batch":
        return nn.BatchNorm1d(dim, track_running_stats=False)
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


class _MLP(nn.Module):
    """Linear -> norm -> ReLU, repeated (num_layers - 1) times, then a plain Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, norm: str):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(d, hidden_dim, bias=norm == "none"), _norm(norm, hidden_dim)]
            layers.append(nn.ReLU(inplace=True))
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class ProjectionHead(_MLP):
    """SimCLR projection head g(.) (Chen et al. 2020, arXiv:2002.05709).

    The contrastive loss is computed on g(h), while the representation h kept for downstream
    tasks is taken before it: the head absorbs the augmentation invariances that would
    otherwise erase useful information from h.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 256,
        out_dim: int = 128,
        num_layers: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__(in_dim, hidden_dim, out_dim, num_layers, norm)


class PredictionHead(_MLP):
    """BYOL predictor q(.) (Grill et al. 2020, arXiv:2006.07733).

    The asymmetry it adds between the online and the target branch is what stops BYOL from
    collapsing without negative pairs. Input and output have the projection's dimension.
    """

    def __init__(
        self,
        in_dim: int = 128,
        hidden_dim: int = 256,
        out_dim: int = 128,
        num_layers: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__(in_dim, hidden_dim, out_dim, num_layers, norm)
