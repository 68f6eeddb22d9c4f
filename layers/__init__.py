"""Module-style layers for minigrad, including the whole dropout family."""

from layers.attention import CausalSelfAttention
from layers.conv import AvgPool2d, Conv2d, MaxPool2d
from layers.embedding import Embedding
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from layers.activations import GELU, Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from layers.linear import Linear
from layers.module import Module, Parameter, Sequential

__all__ = [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "CausalSelfAttention", "Conv2d", "Embedding",
    "Flatten", "GELU", "Identity", "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d", "Module",
    "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh",
]
