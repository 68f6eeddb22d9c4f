"""Softmax family and losses: values against SciPy, stability for huge logits, gradients."""

import numpy as np
import pytest
import scipy.special

import minigrad
from minigrad import ops


def _case(fn, shape, seed=0):
    def case(backend):
        return fn, [backend.randn(*shape, seed=seed, requires_grad=True)]
    return case


def _labels(shape, n_classes, seed=0):
    return np.random.default_rng(seed).integers(0, n_classes, size=shape)


def _cross_entropy_case(logits_shape, reduction, labels_as_tensor=False):
    def case(backend):
        labels = backend.array(_labels(logits_shape[:-1], logits_shape[-1]))
        if labels_as_tensor:
            labels = minigrad.Tensor(labels)
        logits = backend.randn(*logits_shape, seed=1, requires_grad=True)
        return (lambda z: ops.cross_entropy(z, labels, reduction=reduction)), [logits]
    return case


def _mse_case(reduction, target_requires_grad):
    def case(backend):
        pred = backend.randn(3, 4, seed=2, requires_grad=True)
        target = backend.randn(3, 4, seed=3, requires_grad=target_requires_grad)
        if target_requires_grad:
            return (lambda p, t: ops.mse_loss(p, t, reduction)), [pred, target]
        return (lambda p: ops.mse_loss(p, target, reduction)), [pred]
    return case


GRADCHECK_CASES = {
    # A softmax backward with its sign flipped passes an all-ones upstream check (the sum of a
    # softmax is constant); gradcheck's random upstream gradient catches it.
    "Softmax": [_case(ops.softmax, (3, 4)), _case(lambda x: ops.softmax(x, axis=0), (3, 4), 1),
                _case(lambda x: ops.softmax(x, axis=1), (2, 3, 2), 2)],
    "LogSoftmax": [_case(ops.log_softmax, (3, 4)),
                   _case(lambda x: ops.log_softmax(x, axis=0), (3, 4), 1)],
    "LogSumExp": [_case(ops.logsumexp, (3, 4)), _case(lambda x: ops.logsumexp(x, axis=0), (3, 4)),
                  _case(lambda x: ops.logsumexp(x, axis=1, keepdims=True), (2, 3, 2), 2)],
    "CrossEntropy": [_cross_entropy_case((4, 3), "mean"), _cross_entropy_case((4, 3), "sum"),
                     _cross_entropy_case((4, 3), "none"),
                     _cross_entropy_case((4, 3), "mean", labels_as_tensor=True),
                     _cross_entropy_case((2, 3, 4), "mean"),
                     _cross_entropy_case((2, 3, 4), "none", labels_as_tensor=True)],
    "MSELoss": [_mse_case("mean", False), _mse_case("sum", True), _mse_case("none", True)],
}


def _logits(seed=0, shape=(4, 5), scale=3.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family_matches_scipy(backend, axis):
    z = _logits()
    np.testing.assert_allclose(backend.numpy(ops.softmax(backend.tensor(z), axis=axis)),
                               scipy.special.softmax(z, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(backend.numpy(ops.log_softmax(backend.tensor(z), axis=axis)),
                               scipy.special.log_softmax(z, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(backend.numpy(ops.logsumexp(backend.tensor(z), axis=axis)),
                               scipy.special.logsumexp(z, axis=axis), rtol=1e-12)


def test_softmax_of_large_inputs_is_finite_and_shift_invariant(backend):
    z = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    for dtype in (np.float64, np.float32):
        y = backend.numpy(ops.softmax(backend.tensor(z, dtype=dtype)))
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y[0], scipy.special.softmax([0.0, 1.0, 2.0]), rtol=1e-6)
        np.testing.assert_allclose(y[1], [0.0, 0.0, 1.0], atol=1e-30)


def test_logsumexp_of_huge_logits_is_finite_and_exact(backend):
    z = np.array([[1e4, 1e4], [1e4, -1e4], [-1e4, -1e4]])
    y = backend.numpy(ops.logsumexp(backend.tensor(z)))
    np.testing.assert_array_equal(y, [1e4 + np.log(2.0), 1e4, -1e4 + np.log(2.0)])
    np.testing.assert_array_equal(y, scipy.special.logsumexp(z, axis=-1))


def test_cross_entropy_matches_negative_log_softmax(backend):
    z, labels = _logits(1), _labels((4,), 5, seed=1)
    nll = -scipy.special.log_softmax(z, axis=-1)[np.arange(4), labels]
    for reduction, expected in [("mean", nll.mean()), ("sum", nll.sum()), ("none", nll)]:
        loss = ops.cross_entropy(backend.tensor(z), backend.array(labels), reduction)
        np.testing.assert_allclose(backend.numpy(loss), expected, rtol=1e-12)


def test_cross_entropy_of_sequences_matches_flattened_rows(backend):
    z, labels = _logits(2, (2, 3, 5)), _labels((2, 3), 5, seed=2)
    per_token = ops.cross_entropy(backend.tensor(z), backend.array(labels), "none")
    flat = ops.cross_entropy(backend.tensor(z.reshape(6, 5)), backend.array(labels.reshape(6)),
                             "none")
    assert per_token.shape == (2, 3)
    np.testing.assert_allclose(backend.numpy(per_token).reshape(6), backend.numpy(flat))


def test_cross_entropy_of_huge_logits_is_finite_and_exact(backend):
    z = backend.tensor(np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]]), requires_grad=True)
    loss = ops.cross_entropy(z, backend.array(np.array([0, 1])), reduction="none")
    np.testing.assert_array_equal(backend.numpy(loss), [0.0, 1e4])
    loss.sum().backward()
    np.testing.assert_array_equal(backend.numpy(z.grad), [[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(backend):
    z, labels = _logits(3, (3, 4)), np.array([0, 3, 1])
    logits = backend.tensor(z, requires_grad=True)
    ops.cross_entropy(logits, backend.array(labels)).backward()
    expected = (scipy.special.softmax(z, axis=-1) - np.eye(4)[labels]) / 3
    np.testing.assert_allclose(backend.numpy(logits.grad), expected, rtol=1e-12, atol=1e-15)


def test_cross_entropy_rejects_bad_labels(backend):
    z = backend.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), found values from 0 to 3"):
        ops.cross_entropy(z, backend.array(np.array([0, 3])))
    with pytest.raises(ValueError, match=r"expected labels of shape \(2,\)"):
        ops.cross_entropy(z, backend.array(np.array([[0, 1]])))
    with pytest.raises(TypeError, match="labels must be integers, got dtype float64"):
        ops.cross_entropy(z, backend.array(np.array([0.0, 1.0])))


def test_unknown_reduction_is_rejected():
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\)"):
        ops.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="avg")


def test_mse_loss_matches_numpy_and_rejects_shape_mismatch(backend):
    p, t = _logits(4, (3, 4)), _logits(5, (3, 4))
    loss = ops.mse_loss(backend.tensor(p), backend.tensor(t))
    np.testing.assert_allclose(backend.numpy(loss), np.mean((p - t) ** 2), rtol=1e-12)
    with pytest.raises(ValueError, match=r"pred of shape \(3, 4\) and target of shape \(4, 3\)"):
        ops.mse_loss(backend.tensor(p), backend.tensor(t.T.copy()))


def test_log_softmax_gradient_matches_composition(backend):
    """The fused backward equals the one autograd derives from x - logsumexp(x)."""
    z = _logits(6, (3, 4))
    g = backend.array(np.random.default_rng(7).standard_normal((3, 4)))
    fused = backend.tensor(z, requires_grad=True)
    ops.log_softmax(fused).backward(g)
    composed = backend.tensor(z, requires_grad=True)
    (composed - ops.logsumexp(composed, keepdims=True)).backward(g)
    np.testing.assert_allclose(backend.numpy(fused.grad), backend.numpy(composed.grad),
                               rtol=1e-10, atol=1e-12)
