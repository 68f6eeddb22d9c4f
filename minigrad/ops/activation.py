"""Activation functions: relu, leaky_relu, sigmoid, tanh, gelu."""

import math

from minigrad.autograd import Function


class ReLU(Function):
    """Rectified linear unit.

    Forward:  y = max(x, 0)
    Backward: grad_x = grad_out * (y > 0)     (0 at x = 0)
    Saves:    y (its sign is all backward needs)
    """

    def forward(self, x):
        self.y = self.xp.maximum(x, 0)
        return self.y

    def backward(self, grad_out):
        return grad_out * (self.y > 0)


def relu(x):
    return ReLU()(x)


class LeakyReLU(Function):
    """Leaky ReLU with a constant negative slope.

    Forward:  y = x if x > 0 else slope * x
    Backward: grad_x = grad_out * (1 if x > 0 else slope)
    Saves:    the mask x > 0
    """

    def __init__(self, negative_slope=0.01):
        self.slope = float(negative_slope)   # a Python float keeps float32 inputs float32

    def forward(self, x):
        self.positive = x > 0
        return self.xp.where(self.positive, x, x * self.slope)

    def backward(self, grad_out):
        return self.xp.where(self.positive, grad_out, grad_out * self.slope)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU(negative_slope)(x)


class Sigmoid(Function):
    """Logistic sigmoid.

    Forward:  y = 1 / (1 + exp(-x)), computed from e = exp(-|x|) as 1 / (1 + e) where x >= 0
              and e / (1 + e) where x < 0: exp never overflows, and tiny outputs such as
              sigmoid(-50) = 1.9e-22 keep full precision ((1 + tanh(x/2)) / 2 rounds them to 0)
    Backward: grad_x = grad_out * y * (1 - y)
    Saves:    y
    """

    def forward(self, x):
        e = self.xp.exp(-self.xp.abs(x))
        one = self.xp.ones((), dtype=e.dtype)
        self.y = self.xp.where(x >= 0, one, e) / (1 + e)
        return self.y

    def backward(self, grad_out):
        return grad_out * self.y * (1 - self.y)


def sigmoid(x):
    return Sigmoid()(x)


class Tanh(Function):
    """Hyperbolic tangent.

    Forward:  y = tanh(x)
    Backward: grad_x = grad_out * (1 - y**2)
    Saves:    y (cheaper than recomputing tanh from x)
    """

    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, grad_out):
        return grad_out * (1 - self.y * self.y)


def tanh(x):
    return Tanh()(x)


_GELU_C = math.sqrt(2 / math.pi)


class GELU(Function):
    """Gaussian error linear unit, tanh approximation (as in GPT-2 and BERT).

    Forward:  y = x/2 * (1 + t),  t = tanh(u),  u = c * (x + 0.044715 x**3),  c = sqrt(2/pi)
    Backward: grad_x = grad_out * (1/2 (1 + t) + x/2 (1 - t**2) c (1 + 3 * 0.044715 x**2))
    Saves:    x and t
    """

    def forward(self, x):
        self.x = x
        self.t = self.xp.tanh(_GELU_C * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1 + self.t)

    def backward(self, grad_out):
        x, t = self.x, self.t
        du_dx = _GELU_C * (1 + 3 * 0.044715 * x * x)
        return grad_out * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)


def gelu(x):
    return GELU()(x)
