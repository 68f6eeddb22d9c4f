"""minigrad: a small reference deep-learning engine on NumPy (CPU) and CuPy (CUDA).

Every op's forward and backward are written by hand, side by side, with the math in the
docstring; the dropout family is the centrepiece.
"""

__version__ = "0.1.0"

from minigrad.autograd import REGISTRY, Function, is_grad_enabled, no_grad, sum_to
from minigrad.backend import cuda_available
from minigrad.gradcheck import GradcheckError, gradcheck, numeric_gradient
from minigrad.random import Generator, default_generator, manual_seed
from minigrad.tensor import Tensor
from minigrad import checkpoint, data, functional, ops, optim, random

__all__ = [
    "REGISTRY", "Function", "Generator", "GradcheckError", "Tensor", "checkpoint",
    "cuda_available", "data", "default_generator", "functional", "gradcheck", "is_grad_enabled",
    "manual_seed", "no_grad", "numeric_gradient", "ops", "optim", "random", "sum_to", "tensor",
]


def tensor(data, requires_grad=False, device=None, dtype=None):
    """Shorthand for ``Tensor(data, requires_grad, device, dtype)``."""
    return Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)
