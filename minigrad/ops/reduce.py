"""Reductions: sum, mean, max, var (NumPy's ``axis=`` and ``keepdims=``)."""

from minigrad.autograd import Function


def _normalize_axis(axis, ndim):
    """None -> all axes; an int or a tuple -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < (ndim or 1):
            raise ValueError(f"axis {a} is out of bounds for an array of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(out))


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def _expand(xp, grad_out, x_shape, axes, keepdims):
    """Bring a reduced gradient back to the input's shape (the backward of a reduction)."""
    if not keepdims:
        grad_out = grad_out.reshape(
            tuple(1 if i in axes else n for i, n in enumerate(x_shape)))
    return xp.broadcast_to(grad_out, x_shape)


class Sum(Function):
    """Sum over axes.

    Forward:  y = sum_{axes} x
    Backward: grad_x = grad_out broadcast back over the summed axes
    Shapes:   x (...) -> y with the axes removed (or kept as 1 with keepdims)
    Saves:    x's shape and the axes
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad_out):
        return _expand(self.xp, grad_out, self.x_shape, self.axes, self.keepdims)


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


class Mean(Function):
    """Mean over axes.

    Forward:  y = (1/N) sum_{axes} x,  N = number of elements reduced
    Backward: grad_x = grad_out / N broadcast back over the reduced axes
    Saves:    x's shape and the axes
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.n = _count(x.shape, self.axes)
        return x.sum(axis=self.axes, keepdims=self.keepdims) / self.n

    def backward(self, grad_out):
        return _expand(self.xp, grad_out / self.n, self.x_shape, self.axes, self.keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


class Max(Function):
    """Maximum over axes.

    Forward:  y = max_{axes} x
    Backward: grad_x = grad_out * [x == y] / (number of maxima)
              Ties are handled deterministically: tied maxima share the gradient equally
              (the choice of torch.amax; it does not depend on memory order).
    Saves:    the tie-weighted mask and the axes
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        y = x.max(axis=self.axes, keepdims=True)
        is_max = (x == y).astype(x.dtype)
        self.weight = is_max / is_max.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, grad_out):
        return self.weight * _expand(self.xp, grad_out, self.x_shape, self.axes, self.keepdims)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)


class Var(Function):
    """Variance over axes (ddof=0 population variance by default, as NumPy).

    Forward:  y = sum_{axes} (x - m)**2 / (N - ddof),  m = mean_{axes} x
    Backward: grad_x = grad_out * 2 (x - m) / (N - ddof)
              (the term through m vanishes, because sum (x - m) = 0)
    Saves:    x - m and the axes
    """

    def __init__(self, axis=None, keepdims=False, ddof=0):
        self.axis, self.keepdims, self.ddof = axis, keepdims, ddof

    def forward(self, x):
        self.x_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.n = _count(x.shape, self.axes) - self.ddof
        if self.n <= 0:
            raise ValueError(f"var: ddof={self.ddof} leaves no degrees of freedom")
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        return (self.centered ** 2).sum(axis=self.axes, keepdims=self.keepdims) / self.n

    def backward(self, grad_out):
        grad_out = _expand(self.xp, grad_out, self.x_shape, self.axes, self.keepdims)
        return grad_out * (2 / self.n) * self.centered


def var(x, axis=None, keepdims=False, ddof=0):
    return Var(axis, keepdims, ddof)(x)
