"""Backends: device names, transfers, the strict array that behaves like CuPy, CUDA errors."""

import sys
import types

import numpy as np
import pytest

import minigrad
from minigrad import Function, Tensor, backend as mg_backend, strict
from minigrad.strict import HostArrayError, StrictArray


class HostOnlyExp(Function):
    """A deliberately wrong op: it converts its input to a NumPy array on the host."""

    def forward(self, x):
        return np.exp(np.asarray(x))

    def backward(self, grad_out):
        return grad_out


def _strict(values):
    return mg_backend.to_device(np.asarray(values, dtype=np.float64), "strict")


def test_strict_array_refuses_implicit_conversion_to_numpy():
    with pytest.raises(HostArrayError, match=r"use .get\(\)"):
        np.asarray(_strict([1.0, 2.0]))


def test_strict_array_refuses_to_mix_with_a_host_array():
    with pytest.raises(HostArrayError, match="move the array with xp.asarray"):
        _strict([1.0, 2.0]) + np.array([1.0, 2.0])
    with pytest.raises(HostArrayError):
        strict.xp.maximum(_strict([1.0]), np.array([0.0, 2.0]))


def test_strict_array_combines_with_python_scalars_and_explicit_transfers():
    a = _strict([1.0, 2.0])
    np.testing.assert_array_equal((a * 2 + 1).get(), [3.0, 5.0])
    np.testing.assert_array_equal((a + strict.xp.asarray(np.array([1.0, 1.0]))).get(), [2, 3])


def test_strict_reductions_give_zero_dim_device_arrays():
    total = _strict([1.0, 2.0, 3.0]).sum()
    assert isinstance(total, StrictArray) and total.shape == ()
    assert float(total) == 6.0
    assert isinstance(strict.xp.max(_strict([1.0, 5.0])), StrictArray)


def test_strict_get_returns_a_host_copy():
    a = _strict([1.0, 2.0])
    host = a.get()
    assert type(host) is np.ndarray
    host[0] = 99.0
    assert a.get()[0] == 1.0


def test_host_only_op_fails_on_strict_and_passes_on_numpy():
    """The point of the strict backend: a hidden np.asarray breaks in CI, as on a GPU."""
    y = HostOnlyExp()(Tensor(np.array([0.0, 1.0])))
    np.testing.assert_allclose(y.numpy(), np.exp([0.0, 1.0]))
    with pytest.raises(HostArrayError):
        HostOnlyExp()(Tensor(_strict([0.0, 1.0])))


def test_get_xp_follows_the_arrays_and_ignores_scalars():
    assert mg_backend.get_xp(np.ones(2), 3.0, np.float32(1)) is np
    assert mg_backend.get_xp(_strict([1.0]), 2) is strict.xp
    assert mg_backend.get_xp() is np


def test_get_xp_names_both_devices_when_they_differ():
    with pytest.raises(RuntimeError, match=r"found 'cpu' and 'strict'; move them with "
                                           r"\.to\('cpu'\) or \.to\('strict'\)"):
        mg_backend.get_xp(np.ones(2), _strict([1.0]))


def test_to_device_round_trip_keeps_values_and_dtype():
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    on_strict = mg_backend.to_device(host, "strict")
    assert mg_backend.device_of(on_strict) == "strict"
    back = mg_backend.as_numpy(on_strict)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, host)
    assert mg_backend.to_device(host, "cpu") is host


def test_device_names_are_checked():
    assert mg_backend.check_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'; expected one of cpu, cuda, strict"):
        mg_backend.check_device("tpu")
    with pytest.raises(TypeError, match="device must be a string"):
        mg_backend.check_device(0)


def test_device_of_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected a NumPy, CuPy or strict array, got list"):
        mg_backend.device_of([1.0])


def test_xp_for_device(backend):
    assert mg_backend.xp_for_device(backend.device) is backend.xp
    assert mg_backend.xp_for_device("cpu") is np


@pytest.mark.skipif(minigrad.cuda_available(), reason="CUDA is available here")
def test_cuda_without_cupy_says_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(mg_backend, "_cupy", None)
    monkeypatch.setattr(mg_backend, "_cupy_error", None)
    monkeypatch.setitem(sys.modules, "cupy", None)     # makes `import cupy` fail
    with pytest.raises(RuntimeError, match=r"needs CuPy, which is not installed.*"
                                           r"pip install cupy-cuda12x.*device='cpu'"):
        Tensor(np.ones(2)).to("cuda")
    assert minigrad.cuda_available() is False


def test_cuda_without_a_gpu_says_how_to_fix_it(monkeypatch):
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))
    monkeypatch.setattr(mg_backend, "_cupy", None)
    monkeypatch.setattr(mg_backend, "_cupy_error", None)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    with pytest.raises(RuntimeError, match=r"finds no usable GPU.*nvidia-smi.*device='cpu'"):
        mg_backend.check_device("cuda")
    assert minigrad.cuda_available() is False


def test_scatter_add_accumulates_repeated_indices(backend):
    target = backend.xp.zeros(4)
    index = backend.array(np.array([0, 2, 0, 0]))
    mg_backend.scatter_add(backend.xp, target, index, backend.array(np.array([1.0, 2, 3, 4])))
    np.testing.assert_array_equal(backend.numpy(target), [8.0, 0.0, 2.0, 0.0])


def test_tensor_on_strict_needs_explicit_host_copy(backend):
    t = backend.tensor(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert type(t.numpy()) is np.ndarray
