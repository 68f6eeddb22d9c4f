"""Shape ops (reshape, transpose, squeeze, unsqueeze, indexing, concatenate, stack)."""

import numpy as np
import pytest

import minigrad
from minigrad import ops


def _case(fn, *shapes, seed=0):
    def case(backend):
        inputs = [backend.randn(*s, seed=seed + i, requires_grad=True)
                  for i, s in enumerate(shapes)]
        return fn, inputs
    return case


def _index_case(make_index, shape=(4, 3)):
    """x[index] with an index built on the backend (arrays) or given as is."""
    def case(backend):
        index = make_index(backend)
        return (lambda x: x[index]), [backend.randn(*shape, seed=5, requires_grad=True)]
    return case


def _repeated_rows(backend):
    return backend.array(np.array([0, 2, 0, 0, 3]))


def _mask(backend):
    return backend.array(np.array([[True, False, True], [False, False, True],
                                   [True, True, False], [False, False, False]]))


GRADCHECK_CASES = {
    "Reshape": [_case(lambda x: x.reshape(3, 2), (2, 3)),
                _case(lambda x: x.reshape((-1,)), (2, 3, 2)),
                _case(lambda x: ops.reshape(x, (2, 1, 3)), (6,))],
    "Transpose": [_case(lambda x: x.T, (2, 3)), _case(lambda x: x.transpose(1, 2, 0), (2, 3, 4)),
                  _case(lambda x: x.transpose((-1, 0, 1)), (2, 3, 2))],
    "Squeeze": [_case(lambda x: x.squeeze(), (1, 3, 1)), _case(lambda x: x.squeeze(0), (1, 3))],
    "Unsqueeze": [_case(lambda x: x.unsqueeze(0), (2, 3)), _case(lambda x: x.unsqueeze(-1), (3,))],
    "GetItem": [_index_case(lambda b: (slice(1, 3), 0)),
                _index_case(lambda b: (Ellipsis, slice(None, None, -2))),
                _index_case(lambda b: (None, 2)),
                _index_case(_repeated_rows),
                _index_case(lambda b: (b.array(np.array([1, 1, 3])), b.array(np.array([2, 2, 0])))),
                _index_case(lambda b: [3, 3, 1]),
                _index_case(_mask),
                _index_case(lambda b: (slice(None), b.array(np.array([True, False, True]))))],
    "Concatenate": [_case(lambda a, b: ops.concatenate([a, b]), (2, 3), (1, 3)),
                    _case(lambda a, b, c: ops.concatenate([a, b, c], axis=-1),
                          (2, 1), (2, 3), (2, 2))],
    "Stack": [_case(lambda a, b: ops.stack([a, b]), (2, 3), (2, 3)),
              _case(lambda a, b, c: ops.stack([a, b, c], axis=-1), (3,), (3,), (3,))],
}


def test_integer_index_with_repeats_accumulates_gradient(backend):
    x = backend.tensor(np.zeros(4), requires_grad=True)
    index = backend.array(np.array([1, 1, 1, 3]))
    x[index].backward(backend.array(np.array([1.0, 2.0, 3.0, 4.0])))
    np.testing.assert_array_equal(backend.numpy(x.grad), [0.0, 6.0, 0.0, 4.0])


def test_boolean_mask_selects_and_routes_gradient(backend):
    values = np.arange(6.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    x = backend.tensor(values, requires_grad=True)
    y = x[backend.array(mask)]
    np.testing.assert_array_equal(backend.numpy(y), values[mask])
    y.backward(backend.array(np.array([1.0, 2.0, 3.0, 4.0])))
    np.testing.assert_array_equal(backend.numpy(x.grad), [[1.0, 0.0, 2.0], [0.0, 3.0, 4.0]])


def test_index_may_be_a_tensor_or_a_host_array(backend):
    x = backend.tensor(np.arange(5.0), requires_grad=True)
    index = minigrad.Tensor(backend.array(np.array([4, 0, 4])))
    x[index].sum().backward()
    np.testing.assert_array_equal(backend.numpy(x.grad), [1.0, 0.0, 0.0, 0.0, 2.0])
    x.grad = None
    x[np.array([1, 1])].sum().backward()   # moved to the device explicitly by the op
    np.testing.assert_array_equal(backend.numpy(x.grad), [0.0, 2.0, 0.0, 0.0, 0.0])


def test_slice_gradient_is_zero_outside_the_slice(backend):
    x = backend.tensor(np.zeros((3, 4)), requires_grad=True)
    x[1:, ::2].backward(backend.array(np.ones((2, 2))))
    np.testing.assert_array_equal(backend.numpy(x.grad),
                                  [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])


def test_concatenate_and_stack_match_numpy(backend):
    a, b = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
    ta, tb = backend.tensor(a), backend.tensor(b)
    np.testing.assert_array_equal(backend.numpy(ops.concatenate([ta, tb], axis=1)),
                                  np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(backend.numpy(ops.stack([ta, tb], axis=1)),
                                  np.stack([a, b], axis=1))


def test_concatenate_splits_gradient_back_to_each_input(backend):
    a = backend.tensor(np.zeros((1, 2)), requires_grad=True)
    b = backend.tensor(np.zeros((2, 2)), requires_grad=True)
    ops.concatenate([a, b]).backward(backend.array(np.arange(6.0).reshape(3, 2)))
    np.testing.assert_array_equal(backend.numpy(a.grad), [[0.0, 1.0]])
    np.testing.assert_array_equal(backend.numpy(b.grad), [[2.0, 3.0], [4.0, 5.0]])


def test_shape_methods_match_numpy(backend):
    values = np.arange(24.0).reshape(2, 3, 4)
    x = backend.tensor(values)
    np.testing.assert_array_equal(backend.numpy(x.reshape(4, 6)), values.reshape(4, 6))
    np.testing.assert_array_equal(backend.numpy(x.transpose(2, 0, 1)), values.transpose(2, 0, 1))
    np.testing.assert_array_equal(backend.numpy(x.T), values.T)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4)
    assert x.unsqueeze(1).squeeze(1).shape == (2, 3, 4)


def test_transpose_rejects_a_non_permutation(backend):
    with pytest.raises(ValueError, match=r"axes \(0, 0\) are not a permutation of 2 axes"):
        backend.tensor(np.ones((2, 3))).transpose(0, 0)
