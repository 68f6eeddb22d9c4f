"""Convolution and pooling layers on (N, C, H, W) images."""

import math

import numpy as np

from layers.linear import uniform_init
from layers.module import Module, Parameter
from minigrad.backend import xp_for_device
from minigrad.ops.conv import _pair, _pool_args, avg_pool2d, conv2d, max_pool2d


class Conv2d(Module):
    """2-D convolution (cross-correlation) layer: y = conv2d(x, W) + b.

    Args:
        in_channels, out_channels: C and O.
        kernel_size: KH x KW, an int or a pair.
        stride, padding, dilation: ints or pairs (default 1, 0, 1); padding is with zeros.
        groups:     split the channels into this many independent groups (default 1);
                    in_channels and out_channels must both be divisible by it.
        bias:       learn a per-output-channel bias (default True).
        device, dtype, generator: as for Linear.

    Shapes: x (N, C, H, W) -> y (N, O, OH, OW), OH = (H + 2*pad - dil*(KH-1) - 1) // stride + 1;
    W (O, C/groups, KH, KW), b (O,).

    Initialisation (PyTorch's default): W and b uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)],
    fan_in = C/groups * KH * KW, the number of inputs one output pixel sums over.

    Reference: LeCun et al., "Gradient-based learning applied to document recognition" (1998),
    http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, device="cpu", dtype=np.float32, generator=None):
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"Conv2d: channel counts must be positive, got ({in_channels}, "
                             f"{out_channels})")
        if not isinstance(groups, int) or groups < 1 or in_channels % groups \
                or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups!r} must be a positive int dividing "
                             f"in_channels ({in_channels}) and out_channels ({out_channels})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "Conv2d: kernel_size", 1)
        self.stride = _pair(stride, "Conv2d: stride", 1)
        self.padding = _pair(padding, "Conv2d: padding", 0)
        self.dilation = _pair(dilation, "Conv2d: dilation", 1)
        self.groups = groups
        xp = xp_for_device(device)
        kh, kw = self.kernel_size
        bound = 1 / math.sqrt(in_channels // groups * kh * kw)
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(uniform_init(xp, shape, bound, dtype, generator))
        self.bias = Parameter(uniform_init(xp, (out_channels,), bound, dtype, generator)) \
            if bias else None

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")


class MaxPool2d(Module):
    """Max pooling: the largest value of each KH x KW window.

    Args:
        kernel_size: an int or a pair.
        stride:     default: kernel_size (non-overlapping windows).
        padding:    implicit -inf padding on each side, at most half the kernel (default 0).

    The gradient goes to each window's maximum only; among equal maxima, to the first in
    window order (row by row, left to right).

    Reference: Ranzato et al., "Unsupervised learning of invariant feature hierarchies with
    applications to object recognition" (CVPR 2007).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = _pool_args(
            "MaxPool2d", kernel_size, stride, padding)

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling: the mean of each KH x KW window (zero padding counts in the mean).

    Args:
        kernel_size: an int or a pair.
        stride:     default: kernel_size (non-overlapping windows).
        padding:    implicit zero padding on each side, at most half the kernel (default 0).

    Reference: LeCun et al., "Gradient-based learning applied to document recognition" (1998)
    (subsampling layers).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = _pool_args(
            "AvgPool2d", kernel_size, stride, padding)

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
