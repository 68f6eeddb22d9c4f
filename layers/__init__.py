"""Module-style layers for minigrad, including the whole dropout family."""

from layers.attention import CausalSelfAttention
from layers.conv import AvgPool2d, Conv2d, MaxPool2d
from layers.dropout import (Dropout, Dropout1d, Dropout2d, Dropout3d, DropoutLayer, DropPath,
                            LockedDropout, TokenDropout, drop_path_rates, mask_bytes)
from layers.dropout_noise import AlphaDropout, GaussianDropout
from layers.dropout_structured import DropBlock2d, DropConnectLinear
from layers.embedding import Embedding
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from layers.activations import GELU, Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from layers.linear import Linear
from layers.mc_dropout import MCPrediction, mc_dropout_predict
from layers.module import Module, Parameter, Sequential

__all__ = [
    "AlphaDropout", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "CausalSelfAttention", "Conv2d",
    "DropBlock2d", "DropConnectLinear", "DropPath", "Dropout", "Dropout1d", "Dropout2d",
    "Dropout3d", "DropoutLayer", "Embedding", "Flatten", "GELU", "GaussianDropout", "Identity",
    "LayerNorm", "LeakyReLU", "Linear", "LockedDropout", "MCPrediction", "MaxPool2d", "Module",
    "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "TokenDropout", "drop_path_rates",
    "mask_bytes", "mc_dropout_predict",
]
