"""Normalisation layers: BatchNorm1d, BatchNorm2d (running statistics as buffers), LayerNorm."""

import numpy as np

from layers.module import Module, Parameter
from minigrad.backend import xp_for_device
from minigrad.ops.norm import batch_norm, layer_norm


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, which differ only in the input ranks they accept."""

    input_ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, device="cpu",
                 dtype=np.float32):
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got "
                             f"{num_features}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{type(self).__name__}: momentum must lie in [0, 1], got "
                             f"{momentum}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        xp = xp_for_device(device)
        self.weight = Parameter(xp.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(xp.zeros(num_features, dtype=dtype)) if affine else None
        self.register_buffer("running_mean", xp.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", xp.ones(num_features, dtype=dtype))

    def forward(self, x):
        name = type(self).__name__
        if x.ndim not in self.input_ranks:
            raise ValueError(f"{name}: expected a {' or '.join(map(str, self.input_ranks))}-D "
                             f"input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels on axis 1, got "
                             f"input shape {x.shape}")
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training, self.momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.weight is not None}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C.

    Train mode: y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta with the batch's mean and
    biased variance per channel (over N, or N and L); the buffers running_mean and
    running_var move towards the batch's mean and UNBIASED variance by ``momentum``:
    running = (1 - momentum) * running + momentum * batch statistic (PyTorch's convention).
    Eval mode: the same formula with running_mean and running_var, so a sample's output does
    not depend on the rest of its batch.

    Args:
        num_features: C.
        eps:        added to the variance before the square root (default 1e-5).
        momentum:   weight of the new batch in the running averages (default 0.1).
        affine:     learn gamma (``weight``, init 1) and beta (``bias``, init 0) (default True).
        device, dtype: where and in which dtype parameters and buffers live.

    Reference: Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
    Reducing Internal Covariate Shift" (2015), https://arxiv.org/abs/1502.03167
    """

    input_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C (statistics over N, H, W).

    Train and eval behaviour, arguments and buffers as BatchNorm1d.

    Reference: Ioffe & Szegedy (2015), https://arxiv.org/abs/1502.03167
    """

    input_ranks = (4,)


class LayerNorm(Module):
    """Layer normalisation: each sample normalised over its trailing ``normalized_shape`` axes.

    y = gamma * (x - mean) / sqrt(var + eps) + beta, mean and biased variance over the
    trailing axes of each sample; the same in train and eval mode (no running statistics).

    Args:
        normalized_shape: an int (the last axis) or a tuple (the last len(tuple) axes).
        eps:        added to the variance before the square root (default 1e-5).
        elementwise_affine: learn gamma (``weight``, init 1) and beta (``bias``, init 0) of
                    shape normalized_shape (default True).
        device, dtype: where and in which dtype the parameters live.

    Reference: Ba, Kiros & Hinton, "Layer Normalization" (2016), https://arxiv.org/abs/1607.06450
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, device="cpu",
                 dtype=np.float32):
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        if not self.normalized_shape or min(self.normalized_shape) <= 0:
            raise ValueError(f"LayerNorm: normalized_shape must be positive sizes, got "
                             f"{normalized_shape!r}")
        self.eps = eps
        xp = xp_for_device(device)
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = Parameter(xp.ones(self.normalized_shape, dtype=dtype))
            self.bias = Parameter(xp.zeros(self.normalized_shape, dtype=dtype))

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.weight is not None}")
