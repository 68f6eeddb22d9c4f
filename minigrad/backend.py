"""Array backends: the one module that knows which array library runs an op.

Devices:
    "cpu"     NumPy arrays.
    "cuda"    CuPy arrays on the current GPU. CuPy is imported lazily, here and nowhere else.
    "strict"  NumPy arrays wrapped so that they refuse implicit conversion to NumPy, the way
              CuPy arrays do. It exists for the tests: CI has no GPU, and an op that hides a
              host-only call (``np.asarray``, mixing a host array into device math) fails on
              "strict" in CI instead of first on somebody's GPU. See ``minigrad/strict.py``.

Ops never ask which device they are on. ``Function.__call__`` resolves ``xp`` (the array
module: ``numpy``, ``cupy`` or the strict namespace) from the input arrays once, and the op
writes ``self.xp.exp(x)``.
"""

import numpy as np

from minigrad import strict

DEVICES = ("cpu", "cuda", "strict")

_cupy = None          # the cupy module once imported
_cupy_error = None    # why CUDA is unavailable (a message), once checked
_XP_BY_TYPE = {np.ndarray: (np, "cpu"), strict.StrictArray: (strict.xp, "strict")}


def _load_cupy():
    """Import CuPy and check that a GPU answers; raise a RuntimeError that says how to fix it."""
    global _cupy, _cupy_error
    if _cupy is not None:
        return _cupy
    if _cupy_error is None:
        try:
            import cupy
        except ImportError as exc:
            _cupy_error = (
                f"device 'cuda' needs CuPy, which is not installed ({exc}). Install the build "
                "that matches your CUDA toolkit, e.g. `pip install cupy-cuda12x`, or "
                "`pip install -e .[cuda]`; or use device='cpu'.")
        else:
            try:
                count = cupy.cuda.runtime.getDeviceCount()
            except Exception as exc:  # CUDA driver missing or broken
                count, detail = 0, f" ({exc})"
            else:
                detail = ""
            if count == 0:
                _cupy_error = (
                    f"device 'cuda' asked for, but CuPy finds no usable GPU{detail}. Check "
                    "`nvidia-smi` and the NVIDIA driver, or use device='cpu'.")
            else:
                _cupy = cupy
                _XP_BY_TYPE[cupy.ndarray] = (cupy, "cuda")
                return cupy
    raise RuntimeError(_cupy_error)


def cuda_available():
    """True when CuPy imports and sees at least one GPU. Never raises."""
    try:
        _load_cupy()
    except RuntimeError:
        return False
    return True


def check_device(device):
    """Validate a device name and return it normalised ("cuda:0" -> "cuda")."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.lower()
    if name.startswith("cuda:"):
        name = "cuda"
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if name == "cuda":
        _load_cupy()
    return name


def xp_for_device(device):
    """The array module for a device name."""
    device = check_device(device)
    if device == "cuda":
        return _cupy
    return strict.xp if device == "strict" else np


def device_of(array):
    """Device name of a backend array ("cpu", "cuda" or "strict")."""
    entry = _XP_BY_TYPE.get(type(array))
    if entry is None:
        raise TypeError(f"expected a NumPy, CuPy or strict array, got {type(array).__name__}")
    return entry[1]


def get_xp(*arrays):
    """The array module shared by ``arrays``; an error naming both devices if they differ.

    Python scalars and NumPy scalars are ignored (they combine with any device).
    """
    xp = device = None
    for a in arrays:
        entry = _XP_BY_TYPE.get(type(a))
        if entry is None:
            continue
        if xp is None:
            xp, device = entry
        elif entry[0] is not xp:
            raise RuntimeError(
                f"expected all tensors on one device, found '{device}' and '{entry[1]}'; "
                f"move them with .to('{device}') or .to('{entry[1]}')")
    return np if xp is None else xp


def to_device(array, device):
    """Copy (or pass through) an array to a device. Accepts anything NumPy can read."""
    device = check_device(device)
    current = _XP_BY_TYPE.get(type(array), (None, None))[1]
    if current == device:
        return array
    host = as_numpy(array) if current is not None else np.asarray(array)
    if device == "cpu":
        return host
    if device == "strict":
        return strict.wrap(host)
    return _cupy.asarray(host)


def as_numpy(array):
    """A host NumPy array with the same values (an explicit device-to-host copy for CuPy)."""
    if isinstance(array, np.ndarray):
        return array
    if isinstance(array, strict.StrictArray):
        return array.get()
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return array.get()
    return np.asarray(array)


def scatter_add(xp, target, index, values):
    """target[index] += values, accumulating repeated indices (the backward of gathering)."""
    if _cupy is not None and xp is _cupy:
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        xp.add.at(target, index, values)
