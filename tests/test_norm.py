"""BatchNorm (train and eval, running statistics) and LayerNorm: gradients, the compact
backward against autograd through elementary ops, statistics, buffers, errors."""

import numpy as np
import pytest

import minigrad
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from minigrad.ops.norm import batch_norm, layer_norm


def _batch_norm_case(shape, seed):
    def case(backend):
        c = shape[1]
        x = backend.randn(*shape, seed=seed, requires_grad=True)
        gamma = backend.randn(c, seed=seed + 1, requires_grad=True)
        beta = backend.randn(c, seed=seed + 2, requires_grad=True)
        return (lambda x, g, b: batch_norm(x, None, None, g, b, training=True)), [x, gamma, beta]
    return case


def _layer_norm_case(shape, normalized_shape, seed):
    def case(backend):
        x = backend.randn(*shape, seed=seed, requires_grad=True)
        gamma = backend.randn(*normalized_shape, seed=seed + 1, requires_grad=True)
        beta = backend.randn(*normalized_shape, seed=seed + 2, requires_grad=True)
        return (lambda x, g, b: layer_norm(x, normalized_shape, g, b)), [x, gamma, beta]
    return case


GRADCHECK_CASES = {
    "BatchNorm": [_batch_norm_case((5, 3), 0), _batch_norm_case((2, 3, 4), 10),
                  _batch_norm_case((2, 2, 3, 3), 20)],
    "LayerNorm": [_layer_norm_case((3, 5), (5,), 30), _layer_norm_case((2, 3, 2, 4), (2, 4), 40)],
}


def _reference_norm(x, axes, gamma, beta, eps=1e-5):
    """The forward from elementary minigrad ops, so that autograd derives its backward."""
    centered = x - x.mean(axis=axes, keepdims=True)
    var = (centered * centered).mean(axis=axes, keepdims=True)
    return centered / (var + eps).sqrt() * gamma + beta


def _grads(fn, inputs, grad_out):
    for t in inputs:
        t.grad = None
    fn(*inputs).backward(grad_out)
    return [t.grad for t in inputs]


def test_batch_norm_compact_backward_equals_autograd_of_elementary_ops(backend):
    x = backend.randn(4, 3, 2, 2, seed=1, requires_grad=True)
    gamma = backend.randn(3, seed=2, requires_grad=True)
    beta = backend.randn(3, seed=3, requires_grad=True)
    grad_out = backend.randn(4, 3, 2, 2, seed=4).data
    compact = _grads(lambda x, g, b: batch_norm(x, None, None, g, b, training=True),
                     [x, gamma, beta], grad_out)
    reference = _grads(lambda x, g, b: _reference_norm(
        x, (0, 2, 3), g.reshape(1, 3, 1, 1), b.reshape(1, 3, 1, 1)), [x, gamma, beta], grad_out)
    for got, expected in zip(compact, reference):
        np.testing.assert_allclose(backend.numpy(got), backend.numpy(expected), rtol=1e-10,
                                   atol=1e-12)


def test_layer_norm_compact_backward_equals_autograd_of_elementary_ops(backend):
    x = backend.randn(3, 2, 5, seed=5, requires_grad=True)
    gamma = backend.randn(2, 5, seed=6, requires_grad=True)
    beta = backend.randn(2, 5, seed=7, requires_grad=True)
    grad_out = backend.randn(3, 2, 5, seed=8).data
    compact = _grads(lambda x, g, b: layer_norm(x, (2, 5), g, b), [x, gamma, beta], grad_out)
    reference = _grads(lambda x, g, b: _reference_norm(x, (1, 2), g, b), [x, gamma, beta],
                       grad_out)
    for got, expected in zip(compact, reference):
        np.testing.assert_allclose(backend.numpy(got), backend.numpy(expected), rtol=1e-10,
                                   atol=1e-12)


def test_batch_norm_train_output_has_zero_mean_unit_variance_per_channel(backend):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 3, 4, 4)) * np.array([1, 5, 0.1])[:, None, None] + 7
    layer = BatchNorm2d(3, device=backend.device, dtype=np.float64)
    y = backend.numpy(layer(backend.tensor(x)))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    # the biased variance normalises: var(y) = var / (var + eps)
    var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + 1e-5), rtol=1e-10)


def test_batch_norm_updates_running_stats_with_unbiased_variance_and_momentum(backend):
    x = np.random.default_rng(10).standard_normal((6, 2, 3)) * 3 + 1
    layer = BatchNorm1d(2, momentum=0.1, device=backend.device, dtype=np.float64)
    layer(backend.tensor(x))
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2), ddof=1)
    np.testing.assert_allclose(backend.numpy(layer.running_mean), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(backend.numpy(layer.running_var), 0.9 + 0.1 * var, rtol=1e-12)
    layer(backend.tensor(x))
    np.testing.assert_allclose(backend.numpy(layer.running_mean), 0.19 * mean, rtol=1e-12)


def test_batch_norm_eval_uses_running_stats_and_ignores_the_batch(backend):
    layer = BatchNorm1d(3, device=backend.device, dtype=np.float64)
    layer.weight.data = backend.array([1.0, 2.0, -1.0])
    layer.bias.data = backend.array([0.0, 0.5, 1.0])
    layer.running_mean = backend.array([1.0, -1.0, 0.0])
    layer.running_var = backend.array([4.0, 1.0, 0.25])
    layer.eval()
    x = np.random.default_rng(11).standard_normal((5, 3))
    y = backend.numpy(layer(backend.tensor(x)))
    expected = (x - [1, -1, 0]) / np.sqrt(np.array([4, 1, 0.25]) + 1e-5) * [1, 2, -1] \
        + [0, 0.5, 1]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    single = backend.numpy(layer(backend.tensor(x[:1])))
    np.testing.assert_allclose(single, y[:1], rtol=1e-12)
    np.testing.assert_array_equal(backend.numpy(layer.running_mean), [1.0, -1.0, 0.0])


def test_batch_norm_eval_gradient_matches_finite_difference(backend):
    layer = BatchNorm2d(2, device=backend.device, dtype=np.float64)
    layer.running_mean = backend.array([0.5, -0.5])
    layer.running_var = backend.array([2.0, 0.5])
    layer.eval()
    x = backend.randn(2, 2, 3, 3, seed=12, requires_grad=True)
    assert minigrad.gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])


def test_batch_norm_float32_in_float32_out(backend):
    layer = BatchNorm2d(2, device=backend.device)
    x = backend.randn(3, 2, 2, 2, dtype=np.float32, requires_grad=True)
    for mode in (True, False):
        layer.train(mode)
        y = layer(x)
        y.backward(backend.xp.ones(y.shape, dtype=np.float32))
        assert y.dtype == x.grad.dtype == layer.weight.grad.dtype == np.float32
    assert layer.running_mean.dtype == layer.running_var.dtype == np.float32


def test_batch_norm_buffers_are_in_the_state_dict_and_load_back():
    a = BatchNorm1d(2)
    a(minigrad.Tensor(np.arange(8, dtype=np.float32).reshape(4, 2)))
    state = a.state_dict()
    assert sorted(state) == ["bias", "running_mean", "running_var", "weight"]
    b = BatchNorm1d(2)
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.running_mean, a.running_mean)
    np.testing.assert_array_equal(b.running_var, a.running_var)


def test_batch_norm_without_affine_has_no_parameters():
    layer = BatchNorm1d(3, affine=False)
    assert layer.parameters() == []
    y = layer(minigrad.Tensor(np.random.default_rng(13).standard_normal((8, 3))))
    np.testing.assert_allclose(y.numpy().mean(axis=0), 0, atol=1e-12)


def test_batch_norm_rejects_wrong_rank_and_channels():
    with pytest.raises(ValueError, match="BatchNorm2d: expected a 4-D input"):
        BatchNorm2d(3)(minigrad.Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="BatchNorm1d: expected a 2 or 3-D input"):
        BatchNorm1d(3)(minigrad.Tensor(np.zeros((2, 3, 4, 4))))
    with pytest.raises(ValueError, match="expected 3 channels on axis 1"):
        BatchNorm1d(3)(minigrad.Tensor(np.zeros((2, 4))))
    with pytest.raises(ValueError, match="momentum must lie in"):
        BatchNorm1d(3, momentum=1.5)


def test_batch_norm_training_with_one_value_per_channel_is_an_error():
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3)(minigrad.Tensor(np.zeros((1, 3))))


def test_batch_norm_eval_without_running_stats_is_an_error():
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        batch_norm(minigrad.Tensor(np.zeros((2, 3))), None, None, training=False)


def test_layer_norm_normalises_each_sample_over_trailing_axes(backend):
    x = np.random.default_rng(14).standard_normal((4, 3, 5)) * 10 - 3
    y = backend.numpy(LayerNorm((3, 5), device=backend.device, dtype=np.float64)(
        backend.tensor(x)))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    var = x.var(axis=(1, 2))
    np.testing.assert_allclose(y.var(axis=(1, 2)), var / (var + 1e-5), rtol=1e-10)


def test_layer_norm_is_the_same_in_train_and_eval(backend):
    layer = LayerNorm(4, device=backend.device)
    x = backend.randn(2, 4, dtype=np.float32)
    y_train = backend.numpy(layer(x))
    np.testing.assert_array_equal(backend.numpy(layer.eval()(x)), y_train)


def test_layer_norm_float32_in_float32_out(backend):
    layer = LayerNorm(4, device=backend.device)
    x = backend.randn(2, 3, 4, dtype=np.float32, requires_grad=True)
    y = layer(x)
    y.backward(backend.xp.ones(y.shape, dtype=np.float32))
    assert y.dtype == x.grad.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype \
        == np.float32


def test_layer_norm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="does not end with normalized_shape"):
        LayerNorm(4)(minigrad.Tensor(np.zeros((2, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="weight has shape"):
        layer_norm(minigrad.Tensor(np.zeros((2, 4))), 4, minigrad.Tensor(np.ones(5)))
    with pytest.raises(ValueError, match="must be positive sizes"):
        LayerNorm(0)
