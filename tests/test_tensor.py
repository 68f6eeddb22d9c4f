"""Tensor: construction, dtypes, devices, operators with constants, backward's arguments."""

import numpy as np
import pytest

import minigrad
from minigrad import Tensor


def test_python_floats_become_float32_and_ints_stay_int64():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([[1.0, 2.0]]).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.int64
    assert minigrad.tensor(2.0, dtype=np.float64).dtype == np.float64


def test_numpy_arrays_are_kept_without_copy_or_cast():
    a = np.ones(3, dtype=np.float64)
    t = Tensor(a)
    assert t.data is a and t.dtype == np.float64


def test_dtype_argument_converts(backend):
    t = backend.tensor(np.ones(2), dtype=np.float32)
    assert t.dtype == np.float32 and t.device == backend.device


def test_tensor_of_a_tensor_is_refused():
    with pytest.raises(TypeError, match=r"use tensor.detach\(\) or tensor.to\(device\)"):
        Tensor(Tensor([1.0]))


def test_to_moves_between_devices_and_keeps_requires_grad():
    t = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert t.to("cpu") is t
    s = t.to("strict")
    assert s.device == "strict" and s.requires_grad and s.creator is None
    np.testing.assert_array_equal(s.to("cpu").numpy(), [1.0, 2.0])


def test_shape_properties_and_item(backend):
    t = backend.tensor(np.arange(6.0).reshape(2, 3))
    assert (t.shape, t.ndim, t.size, len(t)) == ((2, 3), 2, 6, 2)
    assert t.sum().item() == 15.0
    assert backend.numpy(t.argmax(axis=1)).tolist() == [2, 2]


def test_repr_shows_values_device_and_grad_flag(backend):
    text = repr(backend.tensor(np.array([1.0, 2.0]), requires_grad=True))
    assert "1., 2." in text and f"device='{backend.device}'" in text
    assert "requires_grad=True" in text


def test_reflected_operators_with_constants(backend):
    x = backend.tensor(np.array([1.0, 2.0, 4.0]), requires_grad=True)
    y = 1.0 - x + 2.0 / x + 3.0 * x
    np.testing.assert_allclose(backend.numpy(y), 1 - np.array([1, 2, 4]) + 2 / np.array(
        [1, 2, 4]) + 3 * np.array([1, 2, 4]))
    y.sum().backward()
    np.testing.assert_allclose(backend.numpy(x.grad), -1 - 2 / np.array([1, 4, 16]) + 3)


def test_device_array_on_the_left_calls_the_tensor_operator(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = backend.array(np.array([10.0, 20.0])) - x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(backend.numpy(x.grad), [-1.0, -1.0])


def test_list_constant_goes_to_the_tensor_device(backend):
    x = backend.tensor(np.array([1.0, 2.0]), dtype=np.float32)
    y = x + [0.5, 0.25]
    assert y.device == backend.device and y.dtype == np.float32
    np.testing.assert_array_equal(backend.numpy(y), [1.5, 2.25])


def test_numpy_scalar_constants_keep_float32(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True, dtype=np.float32)
    for y in (x * np.float64(2), np.float64(2) * x, x - np.float64(1), x / np.float64(2),
              np.float64(1) / x, x ** np.float64(2)):
        assert y.dtype == np.float32


def test_backward_casts_the_upstream_gradient_to_the_output_dtype(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True, dtype=np.float32)
    (x * 2.0).backward(backend.array(np.array([1.0, 1.0])))     # a float64 gradient
    assert x.grad.dtype == np.float32


def test_backward_accepts_a_tensor_or_a_host_gradient(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).backward(Tensor(backend.array(np.array([1.0, 2.0]))))
    np.testing.assert_array_equal(backend.numpy(x.grad), [3.0, 6.0])
    x.grad = None
    (x * 3.0).backward([1.0, 1.0])
    np.testing.assert_array_equal(backend.numpy(x.grad), [3.0, 3.0])


def test_backward_on_a_leaf_sets_its_gradient(backend):
    x = backend.tensor(np.array([3.0]), requires_grad=True)
    x.backward()
    np.testing.assert_array_equal(backend.numpy(x.grad), [1.0])


def test_backward_on_a_tensor_without_grad_says_why():
    with pytest.raises(RuntimeError, match="does not require grad.*no_grad"):
        Tensor([1.0]).backward()


def test_zero_grad_and_requires_grad_toggle():
    x = Tensor(np.array([1.0]), requires_grad=True)
    (x * 2.0).backward()
    x.zero_grad()
    assert x.grad is None
    assert x.requires_grad_(False).requires_grad is False
    assert (x * 2.0).creator is None


def test_reshape_and_transpose_accept_tuples_or_arguments(backend):
    t = backend.tensor(np.arange(6.0))
    assert t.reshape(2, 3).shape == t.reshape((2, 3)).shape == (2, 3)
    m = t.reshape(1, 2, 3)
    assert m.transpose(2, 0, 1).shape == m.transpose((2, 0, 1)).shape == (3, 1, 2)
    assert m.transpose().shape == m.T.shape == (3, 2, 1)


def test_list_gradient_keeps_float64_precision(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 1.0).backward([0.1, 1 / 3])
    assert backend.numpy(x.grad).tolist() == [0.1, 1 / 3]
