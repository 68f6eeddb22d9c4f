"""Embedding: gathered rows, scatter-added gradients for repeated indices, index errors."""

import numpy as np
import pytest
import scipy.stats

import minigrad
from layers.embedding import Embedding
from minigrad.ops.embedding import embedding
from minigrad.random import Generator


def _embedding_case(index, seed):
    def case(backend):
        weight = backend.randn(5, 3, seed=seed, requires_grad=True)
        idx = backend.array(index, dtype=np.int64)
        return (lambda w: embedding(idx, w)), [weight]
    return case


GRADCHECK_CASES = {
    "Embedding": [_embedding_case([0, 3, 3, 1], 0), _embedding_case([[4, 0, 4], [4, 2, 0]], 1)],
}


def test_forward_gathers_rows_for_any_index_shape(backend):
    table = np.arange(12.0).reshape(4, 3)
    index = np.array([[[3, 0]], [[1, 1]]])
    y = embedding(backend.array(index), backend.tensor(table))
    assert y.shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(backend.numpy(y), table[index])


def test_repeated_indices_accumulate_their_gradients(backend):
    weight = backend.tensor(np.zeros((4, 2)), requires_grad=True)
    index = backend.array([2, 0, 2, 2])
    grad_out = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    embedding(index, weight).backward(backend.array(grad_out))
    expected = np.array([[2.0, 20.0], [0.0, 0.0], [8.0, 80.0], [0.0, 0.0]])
    np.testing.assert_array_equal(backend.numpy(weight.grad), expected)


def test_gradient_equals_one_hot_matmul_gradient(backend):
    rng = np.random.default_rng(3)
    index = rng.integers(0, 6, size=(3, 4))
    grad_out = rng.standard_normal((3, 4, 2))
    weight = backend.tensor(rng.standard_normal((6, 2)), requires_grad=True)
    embedding(backend.array(index), weight).backward(backend.array(grad_out))
    one_hot = np.eye(6)[index.reshape(-1)]                    # (12, 6)
    np.testing.assert_allclose(backend.numpy(weight.grad),
                               one_hot.T @ grad_out.reshape(-1, 2), rtol=1e-12)


def test_indices_may_be_an_integer_tensor():
    weight = minigrad.Tensor(np.eye(3))
    y = embedding(minigrad.Tensor(np.array([2, 1])), weight)
    np.testing.assert_array_equal(y.numpy(), [[0, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize("bad", [[0, 4], [-1, 0]])
def test_out_of_range_index_is_a_clear_error(backend, bad):
    weight = backend.tensor(np.zeros((4, 2)))
    with pytest.raises(IndexError, match=r"indices must lie in \[0, 4\)"):
        embedding(backend.array(bad), weight)


def test_float_indices_are_rejected(backend):
    with pytest.raises(TypeError, match="indices must be integers"):
        embedding(backend.array([0.0, 1.0]), backend.tensor(np.zeros((4, 2))))
    with pytest.raises(TypeError, match="integer array or Tensor"):
        embedding([0, 1], backend.tensor(np.zeros((4, 2))))


def test_float32_in_float32_out(backend):
    layer = Embedding(5, 3, device=backend.device)
    y = layer(backend.array([[1, 2], [2, 4]]))
    y.backward(backend.xp.ones(y.shape, dtype=np.float32))
    assert y.dtype == layer.weight.grad.dtype == np.float32


def test_layer_initial_weights_are_standard_normal():
    layer = Embedding(200, 50, generator=Generator(0))
    values = layer.weight.numpy().astype(np.float64).ravel()
    # Kolmogorov-Smirnov against N(0, 1): 10,000 draws, a true normal passes at 1% level
    assert scipy.stats.kstest(values, "norm").pvalue > 0.01


def test_layer_rejects_nonpositive_sizes():
    with pytest.raises(ValueError, match="sizes must be positive"):
        Embedding(0, 4)
