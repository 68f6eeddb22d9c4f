"""Normalisations: batch_norm (statistics over the batch, per channel) and layer_norm (statistics
over the last axes, per sample).

Both normalise x over some axes, m elements per group, then apply an affine map:

    mu = mean(x),  var = mean((x - mu)**2)   (biased),  s = 1 / sqrt(var + eps)
    x_hat = (x - mu) * s,  y = gamma * x_hat + beta

Backward, derived once for both. Let g = grad_out * gamma, the gradient that reaches x_hat
(gamma is folded in here). x_hat_i depends on x_j directly, through mu and through s:

    d mu / d x_j  = 1/m
    d var / d x_j = 2 (x_j - mu) / m       (the path through mu vanishes: sum_i (x_i - mu) = 0)
    d s / d x_j   = -s**3 / 2 * d var / d x_j = -s**3 (x_j - mu) / m
    d x_hat_i / d x_j = s (delta_ij - 1/m) + (x_i - mu) d s / d x_j
                      = (s / m) (m delta_ij - 1 - x_hat_i x_hat_j)

Contracting with g over i gives the compact formula that both ops use:

    grad_x = (s / m) * (m * g - sum(g) - x_hat * sum(g * x_hat))      (sums over the group)

and, for the affine part, grad_gamma = sum(grad_out * x_hat), grad_beta = sum(grad_out), summed
over every axis along which gamma is shared.
"""

from minigrad.autograd import Function, constant_array, sum_to
from minigrad.backend import get_xp


def _normalize(xp, x, axes, eps):
    """(x_hat, mu, var, s) over ``axes`` (keepdims); the forward shared by both ops."""
    mu = x.mean(axis=axes, keepdims=True)
    centered = x - mu
    var = (centered * centered).mean(axis=axes, keepdims=True)
    s = 1 / xp.sqrt(var + eps)
    return centered * s, mu, var, s


def _normalize_backward(g, x_hat, s, axes):
    """grad_x = (s / m) * (m*g - sum(g) - x_hat * sum(g * x_hat)); see the module docstring."""
    m = x_hat.size // s.size    # elements per normalised group
    return (s / m) * (m * g - g.sum(axis=axes, keepdims=True)
                      - x_hat * (g * x_hat).sum(axis=axes, keepdims=True))


class BatchNorm(Function):
    """Batch normalisation with the statistics of the current batch (training mode).

    Forward:  per channel c (axis 1), over the N * (spatial) elements of that channel:
              y = gamma[c] * (x - mu[c]) / sqrt(var[c] + eps) + beta[c],  var biased (ddof 0)
    Backward: g = grad_out * gamma, then the compact formula of the module docstring:
              grad_x = (s / m) * (m*g - sum(g) - x_hat * sum(g * x_hat)),  m = N * (spatial)
              grad_gamma = sum(grad_out * x_hat),  grad_beta = sum(grad_out)
              (sums over every axis but the channel axis)
    Shapes:   x (N, C) or (N, C, *spatial); gamma, beta (C,) -> y like x
    Saves:    x_hat, s = 1/sqrt(var + eps), gamma; also keeps the batch statistics ``mean`` and
              ``var`` (C,) so that the caller can update running averages.
    """

    def __init__(self, eps=1e-5):
        if not eps > 0:
            raise ValueError(f"batch_norm: eps must be positive, got {eps}")
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.axes = (0,) + tuple(range(2, x.ndim))
        if x.size // x.shape[1] < 2:
            raise ValueError(
                f"batch_norm: training needs more than one value per channel to estimate a "
                f"variance, got input shape {x.shape}; use a larger batch or eval mode")
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)    # (C,) -> broadcastable against x
        self.x_hat, mu, var, self.s = _normalize(self.xp, x, self.axes, self.eps)
        self.mean, self.var = mu.reshape(-1), var.reshape(-1)
        self.gamma = gamma.reshape(shape)
        return self.gamma * self.x_hat + beta.reshape(shape)

    def backward(self, grad_out):
        _, need_gamma, need_beta = self.needs_input_grad
        grad_gamma = (grad_out * self.x_hat).sum(axis=self.axes) if need_gamma else None
        grad_beta = grad_out.sum(axis=self.axes) if need_beta else None
        grad_x = _normalize_backward(grad_out * self.gamma, self.x_hat, self.s, self.axes)
        return grad_x, grad_gamma, grad_beta


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over axis 1 (the channels), with PyTorch's arguments.

    training=True: normalise with the batch statistics (``BatchNorm`` op), and, when the
    running arrays are given, update them IN PLACE with an exponential average:
        running_mean = (1 - momentum) * running_mean + momentum * batch mean
        running_var  = (1 - momentum) * running_var + momentum * batch var * m / (m - 1)
    (the running variance is the unbiased estimate; the normalisation uses the biased one).
    training=False: normalise with the running statistics, which are constants here, so
    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias is composed from
    existing ops. weight and bias default to 1 and 0 (no affine map).
    """
    x_data = constant_array(x)
    if x_data.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, ...), got shape {x_data.shape}")
    n_channels = x_data.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and value.shape != (n_channels,):
            raise ValueError(f"batch_norm: {name} has shape {value.shape} but the input has "
                             f"{n_channels} channels (axis 1); expected ({n_channels},)")
    if not 0 <= momentum <= 1:
        raise ValueError(f"batch_norm: momentum must lie in [0, 1], got {momentum}")
    xp = get_xp(x_data)
    if training:
        gamma = xp.ones(n_channels, dtype=x_data.dtype) if weight is None else weight
        beta = xp.zeros(n_channels, dtype=x_data.dtype) if bias is None else bias
        op = BatchNorm(eps)
        y = op(x, gamma, beta)
        if running_mean is not None and running_var is not None:
            m = x_data.size // n_channels
            running_mean *= 1 - momentum
            running_mean += (momentum * op.mean).astype(running_mean.dtype)
            running_var *= 1 - momentum
            running_var += (momentum * m / (m - 1) * op.var).astype(running_var.dtype)
        return y
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and "
                         "running_var; pass them, or training=True to use batch statistics")
    shape = (1, n_channels) + (1,) * (x_data.ndim - 2)
    inv_std = (1 / xp.sqrt(running_var + eps)).astype(x_data.dtype)
    y = (x - running_mean.astype(x_data.dtype).reshape(shape)) * inv_std.reshape(shape)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


class LayerNorm(Function):
    """Layer normalisation over the trailing axes, with an elementwise affine map.

    Forward:  for each sample (leading index), over the k normalised trailing axes:
              y = gamma * (x - mu) / sqrt(var + eps) + beta,  var biased (ddof 0)
    Backward: g = grad_out * gamma, then the compact formula of the module docstring, with the
              sums over the k trailing axes:
              grad_x = (s / m) * (m*g - sum(g) - x_hat * sum(g * x_hat)),  m = prod(x.shape[-k:])
              grad_gamma = sum_to(grad_out * x_hat, gamma.shape)   (sum over the leading axes)
              grad_beta  = sum_to(grad_out, beta.shape)
    Shapes:   x (*, *normalized_shape); gamma, beta normalized_shape -> y like x
    Saves:    x_hat, s = 1/sqrt(var + eps), gamma
    """

    def __init__(self, normalized_shape, eps=1e-5):
        self.normalized_shape = tuple(normalized_shape)
        if not eps > 0:
            raise ValueError(f"layer_norm: eps must be positive, got {eps}")
        self.eps = eps

    def forward(self, x, gamma, beta):
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape:
            raise ValueError(
                f"layer_norm: input of shape {x.shape} does not end with normalized_shape "
                f"{self.normalized_shape}")
        self.axes = tuple(range(x.ndim - k, x.ndim))
        self.x_hat, _, _, self.s = _normalize(self.xp, x, self.axes, self.eps)
        self.gamma = gamma
        return gamma * self.x_hat + beta

    def backward(self, grad_out):
        _, need_gamma, need_beta = self.needs_input_grad
        shape = self.normalized_shape
        grad_gamma = sum_to(grad_out * self.x_hat, shape) if need_gamma else None
        grad_beta = sum_to(grad_out, shape) if need_beta else None
        grad_x = _normalize_backward(grad_out * self.gamma, self.x_hat, self.s, self.axes)
        return grad_x, grad_gamma, grad_beta


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the trailing ``normalized_shape`` axes (PyTorch's arguments);
    weight and bias default to 1 and 0 (no affine map)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} has shape {value.shape}, expected "
                             f"normalized_shape {normalized_shape}")
    x_data = constant_array(x)
    xp = get_xp(x_data)
    gamma = xp.ones(normalized_shape, dtype=x_data.dtype) if weight is None else weight
    beta = xp.zeros(normalized_shape, dtype=x_data.dtype) if bias is None else bias
    return LayerNorm(normalized_shape, eps)(x, gamma, beta)
