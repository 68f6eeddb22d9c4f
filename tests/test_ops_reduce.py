"""Reductions (sum, mean, max, var): values against NumPy, gradients, ties, axis errors."""

import numpy as np
import pytest

from minigrad import ops


def _case(fn, shape, seed=0):
    def case(backend):
        return fn, [backend.randn(*shape, seed=seed, requires_grad=True)]
    return case


def _reductions(method, **extra):
    """Cases for one reduction method: all axes, one axis, negative axis, tuple, keepdims."""
    def reduce(**kwargs):
        return lambda x: getattr(x, method)(**kwargs, **extra)
    return [_case(reduce(), (2, 3)), _case(reduce(axis=0), (3, 4), 1),
            _case(reduce(axis=-1, keepdims=True), (2, 3, 2), 2),
            _case(reduce(axis=(0, 2)), (2, 3, 2), 3), _case(reduce(axis=1), (4, 2), 4)]


GRADCHECK_CASES = {
    "Sum": _reductions("sum"),
    "Mean": _reductions("mean"),
    "Max": _reductions("max"),   # standard normal values: no ties
    "Var": _reductions("var") + _reductions("var", ddof=1),
}

AXES = [None, 0, -1, (0, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_reduction_matches_numpy(backend, name, axis, keepdims):
    values = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = getattr(backend.tensor(values), name)(axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(values, axis=axis, keepdims=keepdims)
    assert y.shape == expected.shape
    np.testing.assert_allclose(backend.numpy(y), expected, rtol=1e-12)


@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_var_ddof_matches_numpy(backend, ddof):
    values = np.random.default_rng(1).standard_normal((3, 5))
    y = ops.var(backend.tensor(values), axis=1, ddof=ddof)
    np.testing.assert_allclose(backend.numpy(y), np.var(values, axis=1, ddof=ddof), rtol=1e-12)


def test_var_without_degrees_of_freedom_raises(backend):
    with pytest.raises(ValueError, match="ddof=3 leaves no degrees of freedom"):
        ops.var(backend.tensor(np.ones((2, 3))), axis=1, ddof=3)


def test_reduction_to_all_axes_gives_a_zero_dim_array(backend):
    y = backend.tensor(np.ones((2, 3))).sum()
    assert y.shape == () and type(y.data) is type(backend.xp.zeros(1))
    assert y.item() == 6.0


def test_max_ties_share_the_gradient_equally(backend):
    x = backend.tensor(np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]]),
                       requires_grad=True)
    x.max(axis=1).backward(backend.array(np.array([1.0, 3.0])))
    np.testing.assert_array_equal(backend.numpy(x.grad),
                                  [[0.0, 0.5, 0.5, 0.0], [1.0, 1.0, 1.0, 0.0]])


def test_max_tie_gradient_is_deterministic_over_calls_and_backends(backend):
    values = np.array([[2.0, 7.0, 7.0], [7.0, 1.0, 7.0]])
    grads = []
    for _ in range(3):
        x = backend.tensor(values, requires_grad=True)
        x.max().backward()
        grads.append(backend.numpy(x.grad))
    expected = np.array([[0.0, 0.25, 0.25], [0.25, 0.0, 0.25]])
    for grad in grads:
        np.testing.assert_array_equal(grad, expected)


def test_mean_gradient_is_uniform(backend):
    x = backend.tensor(np.zeros((4, 5)), requires_grad=True)
    x.mean().backward()
    np.testing.assert_array_equal(backend.numpy(x.grad), np.full((4, 5), 1 / 20))


def test_sum_keepdims_gradient_broadcasts_back(backend):
    x = backend.tensor(np.zeros((2, 3)), requires_grad=True)
    x.sum(axis=0, keepdims=True).backward(backend.array(np.array([[1.0, 2.0, 3.0]])))
    np.testing.assert_array_equal(backend.numpy(x.grad), [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_out_of_range_axis_names_the_axis(backend, name):
    with pytest.raises(ValueError, match="axis 2 is out of bounds for an array of 2 dimensions"):
        getattr(backend.tensor(np.ones((2, 3))), name)(axis=2)
