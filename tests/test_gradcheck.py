"""The gradient checker itself: it must catch wrong backwards and say exactly where."""

import re

import numpy as np
import pytest
import scipy.optimize

import minigrad
from minigrad import Function, GradcheckError, Tensor, gradcheck, ops
from minigrad.gradcheck import numeric_gradient


class MulWithDoubledGradA(Function):
    """a * b whose gradient for a is off by a factor of 2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad_out):
        return 2 * grad_out * self.b, grad_out * self.a


class SoftmaxWithFlippedSign(Function):
    """Softmax whose backward has its sign flipped."""

    def forward(self, x):
        e = self.xp.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, grad_out):
        y = self.y
        return -(y * (grad_out - (grad_out * y).sum(axis=-1, keepdims=True)))


class ForgetsItsInput(Function):
    def forward(self, x):
        return x * 3

    def backward(self, grad_out):
        return None


class WrongShapeGradient(Function):
    def forward(self, x):
        return x * 1

    def backward(self, grad_out):
        return grad_out.sum(axis=0)


def _named(tensor, name):
    tensor.name = name
    return tensor


def test_wrong_backward_is_reported_with_input_element_and_values(backend):
    a = _named(backend.randn(2, 3, seed=1, requires_grad=True), "a")
    b = _named(backend.randn(2, 3, seed=2, requires_grad=True), "b")
    g = np.random.default_rng(3).standard_normal((2, 3))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: MulWithDoubledGradA()(a, b), [a, b], grad_out=backend.array(g))
    message = str(info.value)
    match = re.search(r"input 0 'a' \(shape \(2, 3\)\) at element \((\d), (\d)\): analytic "
                      r"(\S+), numeric (\S+), .* relative error (\S+);", message)
    assert match, message
    i, j = int(match.group(1)), int(match.group(2))
    analytic, numeric, rel = (float(match.group(k)) for k in (3, 4, 5))
    expected = g[i, j] * backend.numpy(b)[i, j]          # d<g, a*b>/da_ij
    assert numeric == pytest.approx(expected, rel=1e-6)
    assert analytic == pytest.approx(2 * expected, rel=1e-9)
    assert rel == pytest.approx(0.5, rel=1e-3)
    assert "6 of 6 elements out of tolerance" in message


def test_correct_backward_passes(backend):
    a, b = backend.randn(2, 3, seed=1, requires_grad=True), backend.randn(2, 3, seed=2,
                                                                          requires_grad=True)
    assert gradcheck(lambda a, b: a * b, [a, b])
    assert gradcheck(lambda a, b: a * b, [a, b], fast=True)


def test_flipped_softmax_passes_all_ones_upstream_but_fails_random_upstream(backend):
    """The blind spot of checking sum(y): softmax sums to 1, so d sum(y)/dx = 0 whatever the
    sign of the backward. A random upstream gradient sees the error."""
    x = backend.randn(3, 4, seed=4, requires_grad=True)
    ones = backend.array(np.ones((3, 4)))
    assert gradcheck(lambda x: SoftmaxWithFlippedSign()(x), [x], grad_out=ones)
    with pytest.raises(GradcheckError, match="relative error 2;"):
        gradcheck(lambda x: SoftmaxWithFlippedSign()(x), [x])
    assert gradcheck(ops.softmax, [x])


def test_fast_mode_catches_a_wrong_backward(backend):
    a = backend.randn(6, 5, seed=5, requires_grad=True)
    b = backend.randn(6, 5, seed=6, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(6, 5\)\) along random "
                                             r"direction 0.*fast mode"):
        gradcheck(lambda a, b: MulWithDoubledGradA()(a, b), [a, b], fast=True)
    x = backend.randn(3, 4, seed=7, requires_grad=True)
    with pytest.raises(GradcheckError, match="fast mode"):
        gradcheck(lambda x: SoftmaxWithFlippedSign()(x), [x], fast=True)


def test_missing_gradient_is_caught(backend):
    x = backend.randn(3, seed=8, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"analytic 0, numeric"):
        gradcheck(lambda x: ForgetsItsInput()(x), [x])


def test_gradient_of_wrong_shape_is_caught(backend):
    x = backend.randn(2, 3, seed=9, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"gradient of shape \(3,\) for input 0"):
        gradcheck(lambda x: WrongShapeGradient()(x), [x])


SCALAR_FUNCTIONS = [
    ("logsumexp", lambda x: ops.logsumexp(x)),
    ("x_tanh_x", lambda x: (x.tanh() * x).sum()),
    ("mean_gelu", lambda x: ops.gelu(x).mean()),
    ("cube_over_softmax_norm", lambda x: (x ** 3).sum() / x.exp().sum()),
]


@pytest.mark.parametrize("name,f", SCALAR_FUNCTIONS, ids=[s[0] for s in SCALAR_FUNCTIONS])
def test_finite_differences_agree_with_scipy_approx_fprime(backend, name, f):
    x0 = np.random.default_rng(10).standard_normal(5)

    def f_host(v):
        return f(Tensor(backend.array(v))).item()

    scipy_numeric = scipy.optimize.approx_fprime(x0, f_host, 1e-7)
    x = backend.tensor(x0, requires_grad=True)
    ours_numeric = numeric_gradient(f, [x])
    f(x).backward()
    analytic = backend.numpy(x.grad)
    np.testing.assert_allclose(ours_numeric, scipy_numeric, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(analytic, ours_numeric, rtol=1e-7, atol=1e-9)
    assert gradcheck(f, [backend.tensor(x0, requires_grad=True)])


def test_numeric_gradient_contracts_with_the_upstream_gradient(backend):
    x = backend.randn(2, 3, seed=11, requires_grad=True)
    g = np.random.default_rng(12).standard_normal((2, 3))
    numeric = numeric_gradient(lambda t: t.exp(), [x], grad_out=backend.array(g))
    np.testing.assert_allclose(numeric, g * np.exp(backend.numpy(x)), rtol=1e-7)


def test_float32_inputs_are_refused_unless_allowed(backend):
    x = backend.randn(4, seed=13, dtype=np.float32, requires_grad=True)
    with pytest.raises(ValueError, match=r"input 0 \(shape \(4,\)\) is float32; finite "
                                         r"differences need float64.*allow_float32=True"):
        gradcheck(ops.tanh, [x])
    assert gradcheck(ops.tanh, [x], allow_float32=True, eps=1e-2, atol=1e-2, rtol=1e-2)


def test_gradcheck_argument_errors():
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(ops.tanh, [Tensor(np.ones(2))])
    with pytest.raises(TypeError, match="fn must return a Tensor, got ndarray"):
        gradcheck(lambda x: x.data, [Tensor(np.ones(2), requires_grad=True)])


def test_gradcheck_leaves_inputs_unchanged(backend):
    x = backend.randn(2, 3, seed=14, requires_grad=True)
    before = backend.numpy(x).copy()
    gradcheck(lambda t: t * t, [x])
    gradcheck(lambda t: t * t, [x], fast=True)
    np.testing.assert_array_equal(backend.numpy(x), before)


def test_gradcheck_is_exported_at_top_level():
    assert minigrad.gradcheck is gradcheck and minigrad.GradcheckError is GradcheckError
