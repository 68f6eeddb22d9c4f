"""Matrix products, and the dtype policy of every built-in op.

float32 in -> float32 out, forward and gradients, also with Python and NumPy scalar constants
(NumPy 2 promotes float32 to float64 when it meets an np.float64 scalar); float64 throughout;
and a whole training step that keeps every parameter and gradient float32.
"""

import numpy as np
import pytest

import layers
import minigrad
from minigrad import ops

CORE_OP_MODULES = {f"minigrad.ops.{name}" for name in
                   ("elementwise", "activation", "reduce", "matmul", "shape", "loss")}


def _matmul_case(a_shape, b_shape):
    def case(backend):
        return ops.matmul, [backend.randn(*a_shape, seed=1, requires_grad=True),
                            backend.randn(*b_shape, seed=2, requires_grad=True)]
    return case


def _linear_case(x_shape, out_features, bias=True):
    def case(backend):
        in_features = x_shape[-1]
        inputs = [backend.randn(*x_shape, seed=3, requires_grad=True),
                  backend.randn(out_features, in_features, seed=4, requires_grad=True)]
        if bias:
            inputs.append(backend.randn(out_features, seed=5, requires_grad=True))
        return ops.linear, inputs
    return case


MATMUL_SHAPES = [((3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4, 2)),
                 ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4,)),
                 ((4,), (5, 4, 2))]

GRADCHECK_CASES = {
    "MatMul": [_matmul_case(a, b) for a, b in MATMUL_SHAPES],
    "Linear": [_linear_case((3, 4), 2), _linear_case((3, 4), 2, bias=False),
               _linear_case((2, 3, 4), 2), _linear_case((4,), 3)],
}


@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES, ids=str)
def test_matmul_matches_numpy_shapes_and_values(backend, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    y = ops.matmul(backend.tensor(a), backend.tensor(b))
    assert y.shape == (a @ b).shape
    np.testing.assert_allclose(backend.numpy(y), a @ b, rtol=1e-12)


def test_matmul_shape_mismatch_names_both_shapes(backend):
    a, b = backend.tensor(np.ones((2, 3))), backend.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(4, 5\) are not aligned"):
        a @ b


def test_matmul_refuses_scalars(backend):
    with pytest.raises(ValueError, match="use \\* for scalars"):
        ops.matmul(backend.tensor(2.0), backend.tensor(np.ones(3)))


def test_linear_matches_x_wt_plus_b(backend):
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s) for s in [(2, 3, 4), (5, 4), (5,)])
    y = ops.linear(backend.tensor(x), backend.tensor(w), backend.tensor(b))
    np.testing.assert_allclose(backend.numpy(y), x @ w.T + b, rtol=1e-12)
    y = ops.linear(backend.tensor(x), backend.tensor(w))
    np.testing.assert_allclose(backend.numpy(y), x @ w.T, rtol=1e-12)


def test_linear_rejects_mismatched_weight_and_bias(backend):
    x, w = backend.tensor(np.ones((2, 3))), backend.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"input of shape \(2, 3\) does not fit weight"):
        ops.linear(x, w)
    with pytest.raises(ValueError, match=r"bias shape \(3,\) must be \(4,\)"):
        ops.linear(backend.tensor(np.ones((2, 5))), w, backend.tensor(np.ones(3)))


def _leaf(backend, dtype, shape, seed, positive=False):
    values = np.random.default_rng(seed).standard_normal(shape)
    if positive:
        values = np.abs(values) + 0.5
    return backend.tensor(values, requires_grad=True, dtype=dtype)


def _labels(backend, shape, n_classes):
    return backend.array(np.arange(int(np.prod(shape))).reshape(shape) % n_classes)


def _mask(backend, shape):
    return backend.array(np.arange(int(np.prod(shape))).reshape(shape) % 2 == 0)


# (op class name, fn(backend, *leaves), leaf shapes, leaves positive). Every op of the core op
# files appears here; the constants include Python numbers, np.float64 scalars and lists.
DTYPE_CASES = [
    ("Add", lambda b, x, y: x + y, [(2, 3), (3,)], False),
    ("Add", lambda b, x: x + np.float64(1.5), [(2, 3)], False),
    ("Add", lambda b, x: np.float64(1.5) + x, [(2, 3)], False),
    ("Add", lambda b, x: x + [1.0, 2.0, 3.0], [(2, 3)], False),
    ("Add", lambda b, x: x + b.array(np.arange(3)), [(2, 3)], False),
    ("Sub", lambda b, x: 2.0 - x - np.float64(0.5), [(2, 3)], False),
    ("Mul", lambda b, x: x * np.float64(2), [(2, 3)], False),
    ("Mul", lambda b, x: np.float64(2) * x * 3, [(2, 3)], False),
    ("Div", lambda b, x, y: x / y / np.float64(3), [(2, 3), (2, 3)], True),
    ("Div", lambda b, x: np.float64(1) / x, [(2, 3)], True),
    ("Neg", lambda b, x: -x, [(2, 3)], False),
    ("Pow", lambda b, x: x ** np.float64(2) + x ** 3 + x ** np.int64(2), [(2, 3)], False),
    ("Pow", lambda b, x: x ** 0.5, [(2, 3)], True),
    ("Exp", lambda b, x: x.exp(), [(2, 3)], False),
    ("Log", lambda b, x: x.log(), [(2, 3)], True),
    ("Sqrt", lambda b, x: x.sqrt(), [(2, 3)], True),
    ("Abs", lambda b, x: x.abs(), [(2, 3)], False),
    ("Maximum", lambda b, x, y: ops.maximum(x, y), [(2, 3), (3,)], False),
    ("Maximum", lambda b, x: ops.maximum(x, np.float64(0.1)), [(2, 3)], False),
    ("Minimum", lambda b, x: ops.minimum(np.float64(0.1), x), [(2, 3)], False),
    ("Clip", lambda b, x: ops.clip(x, np.float64(-0.5), np.float64(0.5)), [(2, 3)], False),
    ("Where", lambda b, x, y: ops.where(_mask(b, (2, 3)), x, y), [(2, 3), (3,)], False),
    ("Where", lambda b, x: ops.where(_mask(b, (2, 3)), x, np.float64(0)), [(2, 3)], False),
    ("AsType", lambda b, x: x.astype(x.dtype) * 2.0, [(2, 3)], False),
    ("ReLU", lambda b, x: x.relu(), [(2, 3)], False),
    ("LeakyReLU", lambda b, x: ops.leaky_relu(x, np.float64(0.1)), [(2, 3)], False),
    ("Sigmoid", lambda b, x: x.sigmoid(), [(2, 3)], False),
    ("Tanh", lambda b, x: x.tanh(), [(2, 3)], False),
    ("GELU", lambda b, x: ops.gelu(x), [(2, 3)], False),
    ("Sum", lambda b, x: x.sum(axis=0), [(2, 3)], False),
    ("Mean", lambda b, x: x.mean(), [(2, 3)], False),
    ("Max", lambda b, x: x.max(axis=1), [(2, 3)], False),
    ("Var", lambda b, x: x.var(axis=0, ddof=1), [(2, 3)], False),
    ("MatMul", lambda b, x, y: x @ y, [(2, 3), (3, 4)], False),
    ("Linear", lambda b, x, w, c: ops.linear(x, w, c), [(2, 3), (4, 3), (4,)], False),
    ("Reshape", lambda b, x: x.reshape(3, 2), [(2, 3)], False),
    ("Transpose", lambda b, x: x.T, [(2, 3)], False),
    ("Squeeze", lambda b, x: x.squeeze(), [(1, 3)], False),
    ("Unsqueeze", lambda b, x: x.unsqueeze(0), [(2, 3)], False),
    ("GetItem", lambda b, x: x[b.array(np.array([0, 0, 1]))], [(2, 3)], False),
    ("Concatenate", lambda b, x, y: ops.concatenate([x, y]), [(2, 3), (1, 3)], False),
    ("Stack", lambda b, x, y: ops.stack([x, y]), [(2, 3), (2, 3)], False),
    ("Softmax", lambda b, x: ops.softmax(x), [(2, 3)], False),
    ("LogSoftmax", lambda b, x: ops.log_softmax(x), [(2, 3)], False),
    ("LogSumExp", lambda b, x: ops.logsumexp(x), [(2, 3)], False),
    ("CrossEntropy", lambda b, x: ops.cross_entropy(x, _labels(b, (2,), 3)), [(2, 3)], False),
    ("CrossEntropy", lambda b, x: ops.cross_entropy(x, _labels(b, (2, 2), 3), "none"),
     [(2, 2, 3)], False),
    ("MSELoss", lambda b, x, y: ops.mse_loss(x, y), [(2, 3), (2, 3)], False),
]


def _run_dtype_case(backend, dtype, fn, shapes, positive):
    leaves = [_leaf(backend, dtype, s, seed, positive) for seed, s in enumerate(shapes)]
    y = fn(backend, *leaves)
    upstream = np.random.default_rng(9).standard_normal(y.shape).astype(dtype)
    y.backward(backend.array(upstream))
    return y, leaves


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,fn,shapes,positive", DTYPE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(DTYPE_CASES)])
def test_dtype_is_kept_in_forward_and_gradients(backend, dtype, name, fn, shapes, positive):
    y, leaves = _run_dtype_case(backend, dtype, fn, shapes, positive)
    assert y.dtype == dtype, f"{name}: output is {y.dtype}"
    for i, leaf in enumerate(leaves):
        assert leaf.grad is not None, f"{name}: input {i} got no gradient"
        assert leaf.grad.dtype == dtype, f"{name}: gradient of input {i} is {leaf.grad.dtype}"


def test_dtype_table_covers_every_core_op():
    core_ops = {name for name, cls in minigrad.REGISTRY.items()
                if cls.__module__ in CORE_OP_MODULES}
    assert core_ops - {case[0] for case in DTYPE_CASES} == set()


def test_training_step_keeps_float32(backend):
    generator = minigrad.random.Generator(0)
    model = layers.Sequential(
        layers.Linear(4, 8, device=backend.device, generator=generator), layers.ReLU(),
        layers.Linear(8, 3, device=backend.device, generator=generator))
    rng = np.random.default_rng(0)
    x = backend.tensor(rng.standard_normal((16, 4)), dtype=np.float32)
    labels = backend.array(rng.integers(0, 3, size=16))
    losses = []
    for _ in range(5):
        model.zero_grad()
        loss = ops.cross_entropy(model(x), labels)
        loss.backward()
        assert loss.dtype == np.float32
        for name, p in model.named_parameters():
            assert p.grad.dtype == np.float32, f"grad of {name} is {p.grad.dtype}"
            p.data = p.data - 0.5 * p.grad
            assert p.dtype == np.float32, f"{name} became {p.dtype} after the update"
        losses.append(loss.item())
    assert losses[-1] < losses[0]
