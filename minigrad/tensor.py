"""Tensor: a backend array, its gradient, and the Function that created it."""

import numpy as np

from minigrad import autograd
from minigrad.backend import _XP_BY_TYPE, as_numpy, check_device, device_of, get_xp, to_device

DEFAULT_DTYPE = np.float32


def _to_array(data, dtype, device):
    """A backend array from ``data``; Python floats and lists become float32 by default."""
    if type(data) in _XP_BY_TYPE:
        array = data
        if dtype is not None and array.dtype != dtype:
            array = array.astype(dtype)
        return array if device is None else to_device(array, device)
    if isinstance(data, Tensor):
        raise TypeError("Tensor(data) got a Tensor; use tensor.detach() or tensor.to(device)")
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.ndarray):
        array = array.astype(DEFAULT_DTYPE)   # Python floats: float32 unless asked otherwise
    return to_device(array, device or "cpu")


class Tensor:
    """An n-dimensional array that records the ops applied to it, for backpropagation.

    Args:
        data:           a NumPy/CuPy array (kept as is, no copy), or a number or nested list
                        (floats become float32, the default dtype; integers stay int64).
        requires_grad:  record ops on this tensor so that ``backward()`` fills ``.grad``.
                        Only floating-point tensors can require gradients.
        device:         "cpu" (NumPy) or "cuda" (CuPy); default: where ``data`` already lives.
        dtype:          convert to this dtype.

    Attributes:
        data:     the backend array (numpy.ndarray on "cpu", cupy.ndarray on "cuda").
        grad:     None, or a backend array of the tensor's shape, filled by ``backward()``.
                  Treat it as read-only: replace it rather than modify it in place, since an op
                  may hand the same gradient array to several inputs.
        creator:  the Function that produced this tensor (None for leaves).
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "name", "__weakref__")
    # array + Tensor must call Tensor.__radd__: ``__array_ufunc__ = None`` makes NumPy, CuPy
    # and the strict arrays step aside (NEP 13); the priority covers older array types.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, device=None, dtype=None, name=None):
        self.data = _to_array(data, dtype, device)
        self.grad = None
        self.creator = None
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    def requires_grad_(self, flag=True):
        """Turn gradient recording on (or off) for this leaf tensor, in place."""
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype "
                f"{self.data.dtype}; create it with dtype=np.float32 (or float64)")
        self.requires_grad = bool(flag)
        return self

    # -- device and dtype -------------------------------------------------------------------
    @property
    def device(self):
        return device_of(self.data)

    def to(self, device):
        """This tensor on ``device`` (itself if already there); a new leaf otherwise."""
        device = check_device(device)
        if device == self.device:
            return self
        return Tensor(to_device(self.data, device), requires_grad=self.requires_grad)

    def numpy(self):
        """The values as a host NumPy array (copied from the GPU when on "cuda")."""
        return as_numpy(self.data)

    def item(self):
        return self.data.item()

    def astype(self, dtype):
        """Differentiable dtype cast (the gradient is cast back to this tensor's dtype)."""
        return ops.astype(self, dtype)

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({as_numpy(self.data)!r}, device='{self.device}'{grad})"

    # -- autograd ---------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf), contracted with ``grad``, into every leaf's ``.grad``.

        ``grad`` defaults to 1 for a one-element tensor; a larger tensor needs an explicit
        upstream gradient of its own shape.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the ops that "
                "made it has requires_grad=True (or it was computed under no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element output, got shape "
                    f"{self.shape}; reduce it first (e.g. loss.sum()) or pass "
                    f"grad= an array of shape {self.shape}")
            grad = get_xp(self.data).ones_like(self.data)
        else:
            grad = self._upstream_gradient(grad)
        if self.creator is None:
            self.grad = grad if self.grad is None else self.grad + grad
            return
        autograd.run_backward(self.creator, grad, retain_graph)

    def _upstream_gradient(self, grad):
        """``grad`` as an array on this tensor's device, of its shape and dtype."""
        if isinstance(grad, Tensor):
            grad = grad.data
        if type(grad) is not type(self.data):
            grad = _to_array(grad, self.data.dtype, self.device)
        if grad.shape != self.data.shape:
            raise ValueError(
                f"backward(grad) needs grad of the output's shape {self.shape}, "
                f"got {grad.shape}")
        if grad.dtype != self.data.dtype:
            grad = grad.astype(self.data.dtype)   # keep float32 gradients float32
        return grad

    def zero_grad(self):
        self.grad = None

    # -- operators --------------------------------------------------------------------------
    def _constant(self, other):
        """A Python or NumPy constant, made to combine without changing this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, int, float, np.generic)):
            return other    # Function.__call__ turns NumPy scalars into Python numbers
        if type(other) in _XP_BY_TYPE:
            array = other
        elif isinstance(other, (list, tuple)):
            array = to_device(np.asarray(other), self.device)   # a list is on no device yet
        else:
            array = np.asarray(other)
        if self.data.dtype.kind == "f" and array.dtype.kind in "fiu":
            array = array.astype(self.data.dtype, copy=False)   # int64 + float32 is float64
        return array

    def __add__(self, other):
        return ops.add(self, self._constant(other))

    def __radd__(self, other):
        return ops.add(self._constant(other), self)

    def __sub__(self, other):
        return ops.sub(self, self._constant(other))

    def __rsub__(self, other):
        return ops.sub(self._constant(other), self)

    def __mul__(self, other):
        return ops.mul(self, self._constant(other))

    def __rmul__(self, other):
        return ops.mul(self._constant(other), self)

    def __truediv__(self, other):
        return ops.div(self, self._constant(other))

    def __rtruediv__(self, other):
        return ops.div(self._constant(other), self)

    def __neg__(self):
        return ops.neg(self)

    def __pow__(self, exponent):
        return ops.pow(self, exponent)

    def __matmul__(self, other):
        return ops.matmul(self, self._constant(other))

    def __rmatmul__(self, other):
        return ops.matmul(self._constant(other), self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # -- methods ----------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return ops.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def argmax(self, axis=None):
        """Indices of the maxima (a non-differentiable int64 tensor)."""
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.transpose(self, axes or None)

    @property
    def T(self):
        return ops.transpose(self, None)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return ops.unsqueeze(self, axis)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def relu(self):
        return ops.relu(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)


autograd.Function._tensor_type = Tensor

from minigrad import ops  # noqa: E402  (ops build Tensors, so they come after the class)
