"""Functional interface (as ``torch.nn.functional``): stateless functions on Tensors."""

from minigrad.ops import (cross_entropy, gelu, leaky_relu, linear, log_softmax, logsumexp,
                          mse_loss, relu, sigmoid, softmax, tanh)

__all__ = [
    "cross_entropy", "gelu", "leaky_relu", "linear", "log_softmax", "logsumexp", "mse_loss",
    "relu", "sigmoid", "softmax", "tanh",
]
