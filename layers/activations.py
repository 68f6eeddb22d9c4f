"""Activation layers and shape helpers as Modules (thin wrappers over minigrad ops)."""

from layers.module import Module
from minigrad import ops


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x):
        return ops.relu(x)


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        return ops.leaky_relu(x, self.negative_slope)


class GELU(Module):
    """Gaussian error linear unit (tanh approximation)."""

    def forward(self, x):
        return ops.gelu(x)


class Tanh(Module):
    """y = tanh(x)."""

    def forward(self, x):
        return ops.tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x))."""

    def forward(self, x):
        return ops.sigmoid(x)


class Flatten(Module):
    """Flatten all axes after the first: (N, d1, d2, ...) -> (N, d1*d2*...)."""

    def forward(self, x):
        return ops.reshape(x, (x.shape[0], -1))


class Identity(Module):
    """y = x (a placeholder, e.g. for a dropout that is switched off)."""

    def forward(self, x):
        return x
