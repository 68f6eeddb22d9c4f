"""A strict CPU array backend that behaves like CuPy where it matters for correctness.

CuPy arrays refuse to become NumPy arrays behind your back: ``np.asarray(gpu_array)`` raises,
mixing a host array into device math raises, and reductions return 0-d device arrays instead
of Python-side scalars. Code that breaks those rules works on NumPy and fails only on a GPU.

``StrictArray`` wraps a NumPy array and enforces the same rules on the CPU, so the test suite
(parametrised over backends) catches host-only calls in CI, where there is no GPU. ``xp`` is
the matching array module: ``xp.zeros``, ``xp.exp`` ... return StrictArrays.

This is a testing device ("strict"); it is slower than plain NumPy and not meant for training.
"""

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

# Functions that, like cupy.asarray, are allowed to take host arrays: they are the explicit
# host-to-device transfer.
_TRANSFER_FUNCTIONS = {"asarray", "array", "asanyarray", "ascontiguousarray"}


class HostArrayError(TypeError):
    """A host NumPy array met a device array without an explicit transfer."""


def _unwrap(value, allow_host=False):
    """StrictArray -> its NumPy array; refuse host arrays (ndim > 0) unless allowed."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.ndarray) and value.ndim > 0 and not allow_host:
        raise HostArrayError(
            "implicit conversion between a host NumPy array and a device array is not "
            "allowed (CuPy refuses it too); move the array with xp.asarray(...) first")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, allow_host) for v in value)
    return value


def _wrap(value):
    """NumPy results -> StrictArrays; NumPy scalars become 0-d arrays, as CuPy returns them."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _call(func, args, kwargs, allow_host=False):
    args = _unwrap(args, allow_host)
    kwargs = {k: _unwrap(v, allow_host) for k, v in kwargs.items()}
    return _wrap(func(*args, **kwargs))


class StrictArray(NDArrayOperatorsMixin):
    """A NumPy array that must be copied to the host explicitly, with ``.get()``."""

    __slots__ = ("_a",)

    def __init__(self, array):
        self._a = array

    def __array__(self, dtype=None, copy=None):
        raise HostArrayError(
            "implicit conversion of a device array to a NumPy array is not allowed (CuPy "
            "refuses it too); use .get() or minigrad.backend.as_numpy() to copy it to the host")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def get(self):
        """Explicit device-to-host copy, as ``cupy.ndarray.get()``."""
        return self._a.copy()

    def __getattr__(self, name):
        if name.startswith("__"):
            # Forwarding __array_interface__ or __array_struct__ would let NumPy read the
            # data behind our back, so np.asarray(strict_array) would silently succeed.
            raise AttributeError(f"'StrictArray' object has no attribute '{name}'")
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *args, **kwargs: _call(attr, args, kwargs)
        return _wrap(attr)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index, allow_host=True)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index, allow_host=True)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return "strict_" + repr(self._a)

    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def T(self):
        return StrictArray(self._a.T)


class _Ufunc:
    """A NumPy ufunc whose call and methods (at, reduce, ...) take and give StrictArrays."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs)

    def __getattr__(self, name):
        method = getattr(self._ufunc, name)
        if callable(method):
            return lambda *args, **kwargs: _call(method, args, kwargs)
        return method


class _Namespace:
    """The strict counterpart of the ``numpy`` module (``xp`` for device "strict")."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, np.ufunc):
            wrapped = _Ufunc(attr)
        elif isinstance(attr, type) or not callable(attr):
            if type(attr).__name__ == "module":
                wrapped = _Namespace(attr)
            else:
                wrapped = attr
        else:
            allow_host = name in _TRANSFER_FUNCTIONS

            def wrapped(*args, **kwargs):
                return _call(attr, args, kwargs, allow_host)
        setattr(self, name, wrapped)
        return wrapped


xp = _Namespace(np)


def wrap(array):
    """Put a host NumPy array on the strict device (a copy, like ``cupy.asarray``)."""
    return StrictArray(np.array(array, copy=True))
