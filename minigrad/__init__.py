"""minigrad: a small reference deep-learning engine on NumPy (CPU) and CuPy (CUDA).

Every op's forward and backward are written by hand, side by side, with the math in the
docstring; the dropout family is the centrepiece.
"""

__version__ = "0.1.0"

from minigrad.autograd import REGISTRY, Function, is_grad_enabled, no_grad, sum_to
from minigrad.backend import cuda_available
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad.tensor import Tensor
from minigrad import functional, ops

__all__ = [
    "REGISTRY", "Function", "GradcheckError", "Tensor", "cuda_available", "functional",
    "gradcheck", "is_grad_enabled", "no_grad", "ops", "sum_to", "tensor",
]


def tensor(data, requires_grad=False, device=None, dtype=None):
    """Shorthand for ``Tensor(data, requires_grad, device, dtype)``."""
    return Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)
