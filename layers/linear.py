"""Fully connected layer."""

import math

import numpy as np

from layers.module import Module, Parameter
from minigrad import random
from minigrad.backend import xp_for_device
from minigrad.ops import linear


class Linear(Module):
    """Affine layer: y = x @ W^T + b.

    Args:
        in_features, out_features: sizes of the input's last axis and of the output's.
        bias:       learn an additive bias b (default True).
        device:     "cpu" or "cuda".
        dtype:      parameter dtype (float32 by default).
        generator:  a minigrad.Generator for the initial weights (default: the default one).

    Shapes: x (..., in_features) -> y (..., out_features); W (out_features, in_features), the
    PyTorch layout, so row j of W holds unit j's incoming weights (what max-norm constrains).

    Initialisation (PyTorch's default for nn.Linear): W and b uniform in [-1/sqrt(in), 1/sqrt(in)].
    This is He's uniform init with gain 1/sqrt(3): it keeps the forward variance of a ReLU net
    within a constant factor per layer, which is enough for the shallow nets here.
    """

    def __init__(self, in_features, out_features, bias=True, device="cpu", dtype=np.float32,
                 generator=None):
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: sizes must be positive, got ({in_features}, "
                             f"{out_features})")
        self.in_features, self.out_features = in_features, out_features
        xp = xp_for_device(device)
        bound = 1 / math.sqrt(in_features)
        shape = (out_features, in_features)
        self.weight = Parameter(uniform_init(xp, shape, bound, dtype, generator))
        self.bias = Parameter(uniform_init(xp, (out_features,), bound, dtype, generator)) \
            if bias else None

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


def uniform_init(xp, shape, bound, dtype, generator):
    """Uniform(-bound, bound) from the counter-based generator, in ``dtype``."""
    u = random.uniform(xp, shape, generator, dtype=np.float64)
    return ((2 * u - 1) * bound).astype(dtype)
