"""Elementwise ops and activations: values against NumPy/SciPy, gradients, edge cases."""

import math

import numpy as np
import pytest
import scipy.special

from minigrad import ops


def _values(seed, shape, away_from=(0.0,), low=None):
    """Standard-normal values pushed at least 0.1 away from the given kinks (or >= low)."""
    v = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        return np.abs(v) + low
    for point in away_from:
        v = np.where(np.abs(v - point) < 0.1, v + 0.2 * np.sign(v - point + 1e-12), v)
    return v


def _unary_case(fn, shape=(2, 3), seed=0, **value_args):
    def case(backend):
        x = backend.tensor(_values(seed, shape, **value_args), requires_grad=True)
        return fn, [x]
    return case


def _binary_case(fn, a_shape, b_shape, seed=0, b_low=None):
    def case(backend):
        a = backend.tensor(_values(seed, a_shape), requires_grad=True)
        b = backend.tensor(_values(seed + 1, b_shape, low=b_low), requires_grad=True)
        return fn, [a, b]
    return case


def _constant_case(fn, shape=(2, 3), seed=0):
    """One tensor input and a constant (array or number) built on the backend."""
    def case(backend):
        x = backend.tensor(_values(seed, shape), requires_grad=True)
        c = backend.array(_values(seed + 1, shape[-1:]))
        return (lambda t: fn(t, c)), [x]
    return case


def _where_case(a_shape, b_shape):
    def case(backend):
        cond = backend.array(np.array([[True, False, True], [False, False, True]]))
        a = backend.tensor(_values(3, a_shape), requires_grad=True)
        b = backend.tensor(_values(4, b_shape), requires_grad=True)
        return (lambda a, b: ops.where(cond, a, b)), [a, b]
    return case


def _where_scalar_case(backend):
    cond = backend.array(np.array([True, False, True, False]))
    return (lambda a: ops.where(cond, a, 0.0)), [backend.randn(4, seed=5, requires_grad=True)]


GRADCHECK_CASES = {
    "Add": [_binary_case(lambda a, b: a + b, (2, 3), (2, 3)),
            _binary_case(lambda a, b: a + b, (2, 3), (3,)),
            _binary_case(lambda a, b: a + b, (2, 1, 3), (4, 1)),
            _constant_case(lambda t, c: t + c), _unary_case(lambda x: 2.5 + x)],
    "Sub": [_binary_case(lambda a, b: a - b, (2, 3), (2, 3)),
            _binary_case(lambda a, b: a - b, (3,), (2, 3)),
            _constant_case(lambda t, c: c - t), _unary_case(lambda x: 1.0 - x)],
    "Mul": [_binary_case(lambda a, b: a * b, (2, 3), (2, 3)),
            _binary_case(lambda a, b: a * b, (2, 3), (2, 1)),
            _binary_case(lambda a, b: a * b, (4, 1, 3), (2, 3)),
            _constant_case(lambda t, c: t * c), _unary_case(lambda x: x * 3.0),
            _unary_case(lambda x: x * x)],
    "Div": [_binary_case(lambda a, b: a / b, (2, 3), (2, 3), b_low=0.5),
            _binary_case(lambda a, b: a / b, (2, 3), (3,), b_low=0.5),
            _unary_case(lambda x: 2.0 / x, low=0.5), _unary_case(lambda x: x / 4.0)],
    "Neg": [_unary_case(lambda x: -x)],
    "Pow": [_unary_case(lambda x: x ** 3), _unary_case(lambda x: x ** 2.0),
            _unary_case(lambda x: x ** 0.5, low=0.5), _unary_case(lambda x: x ** -1.5, low=0.5)],
    "Exp": [_unary_case(ops.exp), _unary_case(lambda x: x.exp(), shape=(4,))],
    "Log": [_unary_case(ops.log, low=0.3)],
    "Sqrt": [_unary_case(ops.sqrt, low=0.3)],
    "Abs": [_unary_case(ops.abs), _unary_case(lambda x: x.abs(), shape=(5,), seed=3)],
    "Maximum": [_binary_case(ops.maximum, (2, 3), (2, 3)),
                _binary_case(ops.maximum, (2, 3), (3,), seed=7),
                _unary_case(lambda x: ops.maximum(x, 0.25), away_from=(0.25,))],
    "Minimum": [_binary_case(ops.minimum, (2, 3), (2, 3)),
                _binary_case(ops.minimum, (2, 1), (2, 3), seed=8),
                _unary_case(lambda x: ops.minimum(0.25, x), away_from=(0.25,))],
    "Clip": [_unary_case(lambda x: ops.clip(x, -0.5, 0.5), shape=(3, 4), away_from=(-0.5, 0.5)),
             _unary_case(lambda x: ops.clip(x, low=0.0), away_from=(0.0,)),
             _unary_case(lambda x: ops.clip(x, high=0.3), away_from=(0.3,))],
    "Where": [_where_case((2, 3), (2, 3)), _where_case((2, 3), (3,)), _where_scalar_case],
    "AsType": [_unary_case(lambda x: ops.astype(x, np.float64)),
               _unary_case(lambda x: x.astype(np.float64) * x)],
    "ReLU": [_unary_case(ops.relu, shape=(3, 4)), _unary_case(lambda x: x.relu(), seed=2)],
    "LeakyReLU": [_unary_case(ops.leaky_relu, shape=(3, 4)),
                  _unary_case(lambda x: ops.leaky_relu(x, 0.2), seed=2)],
    "Sigmoid": [_unary_case(ops.sigmoid, shape=(3, 4))],
    "Tanh": [_unary_case(ops.tanh, shape=(3, 4))],
    "GELU": [_unary_case(ops.gelu, shape=(3, 4)), _unary_case(ops.gelu, shape=(5,), seed=9)],
}


def _gelu_tanh(x):
    """The tanh approximation of GELU, written from its formula."""
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY_REFERENCES = [
    ("neg", lambda x: -x, np.negative, None),
    ("exp", ops.exp, np.exp, None),
    ("log", ops.log, np.log, 0.1),
    ("sqrt", ops.sqrt, np.sqrt, 0.1),
    ("abs", ops.abs, np.abs, None),
    ("relu", ops.relu, lambda x: np.maximum(x, 0), None),
    ("leaky_relu", lambda x: ops.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x), None),
    ("sigmoid", ops.sigmoid, scipy.special.expit, None),
    ("tanh", ops.tanh, np.tanh, None),
    ("gelu", ops.gelu, _gelu_tanh, None),
    ("pow3", lambda x: x ** 3, lambda x: x ** 3, None),
    ("clip", lambda x: ops.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), None),
]


@pytest.mark.parametrize("name,op,reference,low", UNARY_REFERENCES,
                         ids=[r[0] for r in UNARY_REFERENCES])
def test_unary_forward_matches_numpy(backend, name, op, reference, low):
    values = _values(0, (3, 5), low=low) * 2
    y = op(backend.tensor(values))
    np.testing.assert_allclose(backend.numpy(y), reference(values), rtol=1e-12, atol=1e-15)


BINARY_REFERENCES = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("div", lambda a, b: a / b, np.divide),
    ("maximum", ops.maximum, np.maximum),
    ("minimum", ops.minimum, np.minimum),
]


@pytest.mark.parametrize("name,op,reference", BINARY_REFERENCES,
                         ids=[r[0] for r in BINARY_REFERENCES])
def test_binary_forward_broadcasts_like_numpy(backend, name, op, reference):
    a, b = _values(1, (4, 1, 3)), _values(2, (2, 3), low=0.5)
    y = op(backend.tensor(a), backend.tensor(b))
    assert y.shape == (4, 2, 3)
    np.testing.assert_allclose(backend.numpy(y), reference(a, b), rtol=1e-12)


def test_broadcast_gradient_is_summed_to_input_shape(backend):
    a = backend.tensor(np.ones((2, 3)), requires_grad=True)
    b = backend.tensor(np.ones((3,)), requires_grad=True)
    c = backend.tensor(np.ones((2, 1)), requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3,) and c.grad.shape == (2, 1)
    np.testing.assert_array_equal(backend.numpy(b.grad), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(backend.numpy(c.grad), [[3.0], [3.0]])


def test_gelu_tanh_form_is_close_to_exact_gelu(backend):
    x = np.linspace(-5, 5, 101)
    exact = x * 0.5 * (1 + scipy.special.erf(x / math.sqrt(2)))
    y = backend.numpy(ops.gelu(backend.tensor(x)))
    np.testing.assert_allclose(y, exact, atol=1e-3)


def test_sigmoid_and_tanh_saturate_without_overflow(backend):
    x = backend.tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        y = ops.sigmoid(x)
        y.backward(backend.array(np.ones(5)))
    np.testing.assert_array_equal(backend.numpy(y)[[0, 2, 3, 4]], [0.0, 0.5, 1.0, 1.0])
    assert np.all(np.isfinite(backend.numpy(x.grad)))
    assert backend.numpy(ops.tanh(backend.tensor([-1000.0, 1000.0]))).tolist() == [-1.0, 1.0]


def test_sigmoid_keeps_relative_precision_in_the_tails(backend):
    x = np.array([-700.0, -50.0, -20.0, -3.0, 3.0, 20.0])
    y = backend.numpy(ops.sigmoid(backend.tensor(x)))
    np.testing.assert_allclose(y, scipy.special.expit(x), rtol=1e-14, atol=0)


def test_relu_abs_and_clip_pass_no_gradient_where_flat(backend):
    x = backend.tensor(np.array([-2.0, -0.5, 0.0, 0.5, 2.0]), requires_grad=True)
    ops.relu(x).backward(backend.array(np.ones(5)))
    np.testing.assert_array_equal(backend.numpy(x.grad), [0, 0, 0, 1, 1])
    x.grad = None
    ops.abs(x).backward(backend.array(np.ones(5)))
    np.testing.assert_array_equal(backend.numpy(x.grad), [-1, -1, 0, 1, 1])
    x.grad = None
    ops.clip(x, -0.5, 0.5).backward(backend.array(np.ones(5)))
    np.testing.assert_array_equal(backend.numpy(x.grad), [0, 1, 1, 1, 0])   # bounds inclusive


def test_maximum_and_minimum_split_ties_evenly(backend):
    a = backend.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = backend.tensor(np.array([3.0, 2.0, 1.0]), requires_grad=True)
    ops.maximum(a, b).backward(backend.array(np.array([1.0, 1.0, 1.0])))
    np.testing.assert_array_equal(backend.numpy(a.grad), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(backend.numpy(b.grad), [1.0, 0.5, 0.0])
    a.grad = b.grad = None
    ops.minimum(a, b).backward(backend.array(np.array([1.0, 1.0, 1.0])))
    np.testing.assert_array_equal(backend.numpy(a.grad), [1.0, 0.5, 0.0])


def test_where_routes_gradient_by_condition(backend):
    cond = backend.array(np.array([True, False, True]))
    a = backend.tensor(np.zeros(3), requires_grad=True)
    b = backend.tensor(np.zeros(3), requires_grad=True)
    ops.where(cond, a, b).backward(backend.array(np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(backend.numpy(a.grad), [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(backend.numpy(b.grad), [0.0, 2.0, 0.0])


def test_where_needs_a_boolean_condition(backend):
    with pytest.raises(TypeError, match="cond must be a boolean array"):
        ops.where(backend.array(np.array([1, 0])), backend.tensor([1.0, 2.0]), 0.0)


def test_pow_rejects_a_tensor_exponent(backend):
    x = backend.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"exponent must be a number.*\(b \* a.log\(\)\).exp\(\)"):
        x ** x


def test_clip_rejects_low_above_high():
    with pytest.raises(ValueError, match=r"low \(1\) must not exceed high \(0\)"):
        ops.clip(np.ones(2), 1, 0)


def test_astype_casts_forward_and_gradient_back(backend):
    x = backend.tensor(np.array([1.5, -2.0]), requires_grad=True, dtype=np.float32)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    y.backward(backend.array(np.array([1.0, 2.0])))
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(backend.numpy(x.grad), [1.0, 2.0])


def test_constant_operand_gets_no_gradient_and_is_not_modified(backend):
    c = backend.array(np.array([1.0, 2.0, 3.0]))
    x = backend.tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    (c / x).sum().backward()
    np.testing.assert_allclose(backend.numpy(x.grad), -np.array([1.0, 2.0, 3.0]) / [16, 25, 36])
    np.testing.assert_array_equal(backend.numpy(c), [1.0, 2.0, 3.0])
