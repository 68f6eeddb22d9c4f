"""Functional interface (as ``torch.nn.functional``): stateless functions on Tensors."""

from minigrad.ops import (avg_pool2d, batch_norm, conv2d, cross_entropy, embedding, gelu,
                          layer_norm, leaky_relu, linear, log_softmax, logsumexp, max_pool2d,
                          mse_loss, relu, sigmoid, softmax, tanh)
from minigrad.ops.dropout import dropout

__all__ = [
    "avg_pool2d", "batch_norm", "conv2d", "cross_entropy", "dropout", "embedding", "gelu",
    "layer_norm", "leaky_relu", "linear", "log_softmax", "logsumexp", "max_pool2d", "mse_loss",
    "relu", "sigmoid", "softmax", "tanh",
]
