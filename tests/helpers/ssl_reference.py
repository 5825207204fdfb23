"""Self-supervised losses written out as plain double loops over Python floats: the
independent references the vectorised losses in ``common.ssl.losses`` are checked against."""

from __future__ import annotations

import math

import torch


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def reference_ntxent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """SimCLR's 2N-way NT-Xent: each embedding's positive is its other view."""
    z = [*z1.tolist(), *z2.tolist()]
    n2, n = len(z), len(z1)
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        denom = sum(math.exp(_cos(z[i], z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[pos]) / t) / denom)
    return total / n2


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    e = [math.exp(v - top) for v in logits]
    return [v / sum(e) for v in e]


def reference_relational(
    x1: torch.Tensor, x2: torch.Tensor, anchors: torch.Tensor, t: float
) -> float:
    """FedX's relational loss: mean over samples and views of KL(mean || view), where each
    view's distribution is a softmax of its cosine similarities to the anchors over ``t``."""
    a = anchors.tolist()
    total = 0.0
    for u, v in zip(x1.tolist(), x2.tolist(), strict=True):
        p = _softmax([_cos(u, b) / t for b in a])
        q = _softmax([_cos(v, b) / t for b in a])
        m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]
        kl_p = sum(mi * math.log(mi / pi) for mi, pi in zip(m, p, strict=True))
        kl_q = sum(mi * math.log(mi / qi) for mi, qi in zip(m, q, strict=True))
        total += (kl_p + kl_q) / 2
    return total / len(x1)
