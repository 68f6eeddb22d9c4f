"""The graph walk: order, accumulation, no_grad, detach, graph release, errors, custom ops."""

import numpy as np
import pytest

import minigrad
from minigrad import Function, Tensor, ops


class Square(Function):
    """A user-defined op, as a reader would write one (outside the minigrad package)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad_out):
        return grad_out * 2 * self.x


class DropsItsGradient(Function):
    """An op whose backward returns None: no gradient flows back through it."""

    def forward(self, x):
        return x + 0

    def backward(self, grad_out):
        return None


class ReturnsTooManyGradients(Function):
    def forward(self, x):
        return x * 1

    def backward(self, grad_out):
        return grad_out, grad_out


def test_long_chain_backward_needs_no_recursion(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(backend.numpy(x.grad), [1.0001 ** 10_000] * 2, rtol=1e-10)


def test_tensor_used_twice_accumulates_gradient(backend):
    x = backend.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x + x
    y.sum().backward()
    np.testing.assert_allclose(backend.numpy(x.grad), 2 * np.array([1.0, -2.0, 3.0]) + 1)


def test_diamond_graph_sums_both_paths(backend):
    x = backend.tensor(np.array([0.5, 1.5]), requires_grad=True)
    a = x.exp()
    left, right = a * 3.0, a.log()      # both read a: its gradient is the sum of two paths
    (left + right).sum().backward()
    np.testing.assert_allclose(backend.numpy(x.grad), 3 * np.exp([0.5, 1.5]) + 1)


def test_function_runs_after_every_consumer_of_its_output(backend):
    """Here q reads p, and the root reads p directly too. A walk that ran p's backward
    before q's would lose q's contribution."""
    x = backend.tensor(np.array([2.0]), requires_grad=True)
    p = x * 3.0
    q = p * p
    (p + q).sum().backward()          # d/dx (3x + 9x^2) = 3 + 18x
    np.testing.assert_allclose(backend.numpy(x.grad), [3.0 + 36.0])


def test_leaf_gradients_accumulate_over_backward_calls(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(backend.numpy(x.grad), [5.0, 5.0])


def test_no_grad_records_nothing(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with minigrad.no_grad():
        y = (x * 2.0).exp()
        assert not minigrad.is_grad_enabled()
    assert minigrad.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_grad_mode_after_an_exception():
    with pytest.raises(KeyError):
        with minigrad.no_grad():
            raise KeyError("inside")
    assert minigrad.is_grad_enabled()


def test_detach_cuts_the_graph(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    z = y.detach()
    assert z.creator is None and not z.requires_grad
    assert z.data is y.data
    (y * z).sum().backward()          # only the y branch carries gradient to x
    np.testing.assert_array_equal(backend.numpy(x.grad), 2 * backend.numpy(z))


def test_second_backward_through_released_graph_raises(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x.exp() * 2.0).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*"
                                           "retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x.exp() * 2.0).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(backend.numpy(x.grad), 4 * np.exp([1.0, 2.0]))


def test_backward_frees_saved_arrays(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.exp()
    exp_fn = y.creator
    assert hasattr(exp_fn, "y")
    y.sum().backward()
    assert exp_fn.inputs is None and not hasattr(exp_fn, "y")


def test_backward_of_non_scalar_without_grad_names_the_shape(backend):
    y = backend.tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"one-element output, got shape \(2, 3\)"):
        y.backward()


def test_backward_grad_of_wrong_shape_is_rejected(backend):
    y = backend.tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"output's shape \(2, 3\), got \(3, 2\)"):
        y.backward(backend.array(np.ones((3, 2))))


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, "
                                        "got dtype int64"):
        Tensor(np.array([1, 2]), requires_grad=True)


def test_mixing_devices_names_both_devices():
    a = Tensor(np.ones(3), requires_grad=True)
    b = a.to("strict")
    with pytest.raises(RuntimeError, match="found 'cpu' and 'strict'"):
        a + b
    with pytest.raises(RuntimeError, match="found 'strict' and 'cpu'"):
        ops.matmul(b, a)


def test_user_defined_function_works_and_is_not_registered(backend):
    x = backend.tensor(np.array([1.0, -3.0]), requires_grad=True)
    (Square()(x) * 2.0).sum().backward()
    np.testing.assert_array_equal(backend.numpy(x.grad), [4.0, -12.0])
    assert "Square" not in minigrad.REGISTRY
    assert minigrad.gradcheck(lambda t: Square()(t), [backend.randn(3, requires_grad=True)])


def test_builtin_ops_are_registered_by_class_name():
    assert minigrad.REGISTRY["Mul"] is ops.elementwise.Mul
    assert minigrad.REGISTRY["CrossEntropy"] is ops.loss.CrossEntropy


def test_backward_returning_none_stops_the_gradient(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = backend.tensor(np.array([3.0, 4.0]), requires_grad=True)
    y = DropsItsGradient()(x * 2.0) + w
    y.sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(backend.numpy(w.grad), [1.0, 1.0])


def test_backward_returning_wrong_number_of_gradients_is_reported(backend):
    y = ReturnsTooManyGradients()(backend.tensor(np.ones(2), requires_grad=True))
    with pytest.raises(RuntimeError, match="returned 2 gradients for 1 inputs"):
        y.sum().backward()


def test_constants_and_tensors_without_grad_get_no_gradient(backend):
    x = backend.tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = backend.tensor(np.array([5.0, 6.0]))
    (x * c + 1.0).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(backend.numpy(x.grad), [5.0, 6.0])


def test_ops_without_grad_inputs_record_no_graph(backend):
    y = backend.tensor(np.array([1.0])) * 2.0
    assert y.creator is None and not y.requires_grad
