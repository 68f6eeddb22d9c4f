"""Module-style layers for minigrad, including the whole dropout family."""

from layers.activations import GELU, Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from layers.linear import Linear
from layers.module import Module, Parameter, Sequential

__all__ = [
    "GELU", "Flatten", "Identity", "LeakyReLU", "Linear", "Module", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Tanh",
]
