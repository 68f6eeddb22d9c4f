"""The dropout op and the Dropout layer: formulas, masks, memory modes, statistics, errors."""

import warnings

import numpy as np
import pytest
import scipy.stats

import minigrad
from conftest import Backend
from layers import Linear, Sequential
from layers.dropout import Dropout, mask_bytes
from minigrad import random
from minigrad.backend import cuda_available
from minigrad.ops.dropout import MEMORY_MODES, MaskedScale, dropout

P = 0.3


def _mask(backend, shape, keep=0.6, seed=0):
    return backend.array(np.random.default_rng(seed).random(shape) < keep)


def _case_given_mask(scaling, mask_shape):
    def case(backend):
        mask = _mask(backend, mask_shape)
        return (lambda x: dropout(x, P, scaling=scaling, mask=mask),
                [backend.randn(3, 4, seed=1, requires_grad=True)])
    return case


def _case_drawn(memory, mask_shape=None):
    def case(backend):
        def fn(x):   # a fresh generator with the same seed: the same mask on every call
            return dropout(x, P, generator=random.Generator(5), memory=memory,
                           mask_shape=mask_shape)
        return fn, [backend.randn(3, 4, seed=2, requires_grad=True)]
    return case


def _case_eval(scaling):
    def case(backend):
        return (lambda x: dropout(x, P, training=False, scaling=scaling),
                [backend.randn(3, 4, seed=3, requires_grad=True)])
    return case


def _case_p_one(backend):
    return (lambda x: dropout(x, 1.0, generator=random.Generator(1)),
            [backend.randn(2, 3, seed=4, requires_grad=True)])


GRADCHECK_CASES = {"MaskedScale": [
    _case_given_mask("inverted", (3, 4)), _case_given_mask("classic", (3, 4)),
    _case_given_mask("inverted", (3, 1)),
    _case_drawn("bytes"), _case_drawn("bits"), _case_drawn("seed"), _case_drawn("seed", (1, 4)),
    _case_eval("inverted"), _case_eval("classic"), _case_p_one,
]}


def _positive(backend, shape, seed=0, dtype=np.float32):
    """Inputs without zeros, so that a zero in the output can only come from the mask."""
    values = np.abs(np.random.default_rng(seed).standard_normal(shape)) + 0.5
    return backend.tensor(values.astype(dtype), requires_grad=True)


@pytest.mark.parametrize("memory", MEMORY_MODES)
@pytest.mark.parametrize("mask_shape", [None, (6, 1)])
def test_backward_reuses_forward_mask(backend, memory, mask_shape):
    x = _positive(backend, (6, 40))
    gen = random.Generator(11)
    y, mask = dropout(x, P, generator=gen, memory=memory, mask_shape=mask_shape,
                      return_mask=True)
    gen.next_key()                       # draws between forward and backward must not matter
    dropout(x, P)
    g = np.random.default_rng(1).standard_normal((6, 40)).astype(np.float32)
    y.backward(backend.array(g))
    kept = backend.numpy(y) != 0
    np.testing.assert_array_equal(kept, np.broadcast_to(backend.numpy(mask), kept.shape))
    expected = np.where(kept, g * np.float32(1 / (1 - P)), 0)
    np.testing.assert_array_equal(backend.numpy(x.grad), expected)


def test_same_seed_same_mask_across_calls_and_memory_modes(backend):
    x = backend.randn(5, 33, seed=1)
    masks = [dropout(x, P, generator=random.Generator(7), memory=m, return_mask=True)[1]
             for m in MEMORY_MODES + MEMORY_MODES]
    for mask in masks[1:]:
        np.testing.assert_array_equal(backend.numpy(mask), backend.numpy(masks[0]))
    random.manual_seed(3)
    first = dropout(x, P, return_mask=True)[1]
    random.manual_seed(3)
    np.testing.assert_array_equal(backend.numpy(dropout(x, P, return_mask=True)[1]),
                                  backend.numpy(first))


def test_consecutive_draws_give_new_masks():
    gen = random.Generator(0)
    x = minigrad.Tensor(np.ones((50, 50), np.float32))
    first, second = (dropout(x, 0.5, generator=gen, return_mask=True)[1] for _ in range(2))
    assert not np.array_equal(first, second)


def test_same_seed_same_mask_on_every_backend():
    names = ["numpy", "strict"] + (["cupy"] if cuda_available() else [])
    values = np.random.default_rng(0).standard_normal((37, 129)).astype(np.float32)
    outputs = {}
    for name in names:
        b = Backend(name)
        for memory in MEMORY_MODES:
            y, mask = dropout(b.tensor(values), P, generator=random.Generator(2024),
                              memory=memory, return_mask=True)
            outputs[name, memory] = (b.numpy(y), b.numpy(mask))
    reference = outputs["numpy", "bytes"]
    for key, (y, mask) in outputs.items():
        np.testing.assert_array_equal(mask, reference[1], err_msg=str(key))
        np.testing.assert_array_equal(y, reference[0], err_msg=str(key))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_is_binomial(fast_backend, p):
    n = 200_000
    x = fast_backend.tensor(np.ones(n, np.float32))
    kept = int(fast_backend.numpy(dropout(x, p, generator=random.Generator(42),
                                          return_mask=True)[1]).sum())
    # the count of kept elements is Binomial(n, 1-p); a fair draw fails this 1 time in 10**4
    assert scipy.stats.binomtest(kept, n, 1 - p).pvalue > 1e-4


def test_kept_channel_count_is_binomial():
    x = minigrad.Tensor(np.ones((400, 250, 2), np.float32))
    mask = dropout(x, 0.25, generator=random.Generator(8), mask_shape=(400, 250, 1),
                   return_mask=True)[1]
    assert mask.shape == (400, 250, 1)
    assert scipy.stats.binomtest(int(mask.sum()), mask.size, 0.75).pvalue > 1e-4


def _mean_over_draws(scaling, p, draws=4000):
    x = np.random.default_rng(5).standard_normal(200).astype(np.float32)
    batch = minigrad.Tensor(np.tile(x, (draws, 1)))   # each row gets its own mask
    y = dropout(batch, p, scaling=scaling, generator=random.Generator(9))
    return x.astype(np.float64), y.numpy().astype(np.float64).mean(axis=0)


def test_inverted_dropout_preserves_mean():
    p, draws = 0.4, 4000
    x, mean = _mean_over_draws("inverted", p, draws)
    standard_error = np.abs(x) * np.sqrt(p / (1 - p) / draws)
    # E[y] = x; 200 z-scores, each beyond 5 with probability 6e-7
    assert np.max(np.abs(mean - x) / standard_error) < 5


def test_classic_train_mean_equals_eval_output():
    p, draws = 0.4, 4000
    x, mean = _mean_over_draws("classic", p, draws)
    eval_y = dropout(minigrad.Tensor(x), p, training=False, scaling="classic").numpy()
    standard_error = np.abs(x) * np.sqrt(p * (1 - p) / draws)
    assert np.max(np.abs(mean - eval_y) / standard_error) < 5


@pytest.mark.parametrize("p", [0.5, 0.75, 0.875])   # 1-p and 1/(1-p) exact in binary
def test_kept_values_equal_x_over_keep_exactly(backend, p):
    x = _positive(backend, (20, 30))
    y, mask = dropout(x, p, generator=random.Generator(3), return_mask=True)
    kept = backend.numpy(mask)
    values, out = backend.numpy(x), backend.numpy(y)
    np.testing.assert_array_equal(out[kept], values[kept] / np.float32(1 - p))
    assert np.all(out[~kept] == 0)


@pytest.mark.parametrize("p", [0.2, 0.3])
def test_kept_values_use_the_float32_scale_when_inexact(p):
    x = minigrad.Tensor(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    y, mask = dropout(x, p, generator=random.Generator(3), return_mask=True)
    scale = np.float32(1 / (1 - p))   # 1/(1-p) rounded once to float32, then one multiply
    np.testing.assert_array_equal(y.numpy()[mask], x.numpy()[mask] * scale)


@pytest.mark.parametrize("memory", MEMORY_MODES)
def test_dropped_elements_are_exact_zeros_even_for_inf_and_nan(backend, memory):
    values = np.tile(np.array([np.inf, -np.inf, np.nan, 1.0], np.float32), 50)
    x = backend.tensor(values, requires_grad=True)
    y, mask = dropout(x, 0.5, generator=random.Generator(4), memory=memory, return_mask=True)
    y.backward(backend.array(np.full(200, np.inf, np.float32)))
    kept, out, grad = backend.numpy(mask), backend.numpy(y), backend.numpy(x.grad)
    assert 0 < kept.sum() < 200
    assert np.all(out[~kept] == 0) and not np.any(np.signbit(out[~kept]))
    assert np.all(grad[~kept] == 0)
    np.testing.assert_array_equal(out[kept], values[kept] * 2)
    assert np.all(grad[kept] == np.inf)


@pytest.mark.parametrize("memory", MEMORY_MODES)
def test_p_zero_is_identity(backend, memory):
    x = backend.randn(7, 9, seed=2, dtype=np.float32, requires_grad=True)
    y = dropout(x, 0.0, generator=random.Generator(1), memory=memory)
    g = backend.randn(7, 9, seed=3, dtype=np.float32)
    y.backward(g)
    np.testing.assert_array_equal(backend.numpy(y), backend.numpy(x))
    np.testing.assert_array_equal(backend.numpy(x.grad), backend.numpy(g))


@pytest.mark.parametrize("scaling", ["inverted", "classic"])
def test_p_one_gives_zeros_without_division_by_zero(backend, scaling):
    x = backend.randn(4, 5, seed=2, dtype=np.float32, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = dropout(x, 1.0, scaling=scaling, generator=random.Generator(1))
        y.backward(backend.randn(4, 5, seed=3, dtype=np.float32))
        eval_y = dropout(x, 1.0, training=False, scaling=scaling)
    assert np.all(backend.numpy(y) == 0) and np.all(backend.numpy(x.grad) == 0)
    expected_eval = 0 * backend.numpy(x) if scaling == "classic" else backend.numpy(x)
    np.testing.assert_array_equal(backend.numpy(eval_y), expected_eval)


def test_eval_mode_is_identity(backend):
    x = backend.randn(3, 8, seed=1, dtype=np.float32, requires_grad=True)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.5, training=False, return_mask=True) == (x, None)
    layer = Dropout(0.5).eval()
    assert layer(x) is x and layer.last_mask_bytes == 0


def test_classic_eval_scales_by_keep(backend):
    x = backend.randn(3, 8, seed=1, dtype=np.float32, requires_grad=True)
    y = Dropout(0.25, scaling="classic").eval()(x)
    g = backend.randn(3, 8, seed=2, dtype=np.float32)
    y.backward(g)
    np.testing.assert_array_equal(backend.numpy(y), backend.numpy(x) * np.float32(0.75))
    np.testing.assert_array_equal(backend.numpy(x.grad), backend.numpy(g) * np.float32(0.75))


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_classic_and_inverted_differ_by_keep_for_one_mask(backend, p):
    x = backend.randn(6, 10, seed=4, dtype=np.float32)
    mask = _mask(backend, (6, 10))
    classic = backend.numpy(dropout(x, p, scaling="classic", mask=mask))
    inverted = backend.numpy(dropout(x, p, scaling="inverted", mask=mask))
    np.testing.assert_array_equal(classic * np.float32(1 / (1 - p)), inverted)
    classic_eval = backend.numpy(dropout(x, p, training=False, scaling="classic"))
    inverted_eval = backend.numpy(dropout(x, p, training=False, scaling="inverted"))
    np.testing.assert_array_equal(classic_eval, np.float32(1 - p) * inverted_eval)


def test_given_mask_as_tensor_broadcasts_and_is_returned(backend):
    x = _positive(backend, (4, 6))
    mask = minigrad.Tensor(backend.array(np.array([[True], [False], [True], [False]])))
    y, returned = dropout(x, 0.5, mask=mask, return_mask=True)
    out = backend.numpy(y)
    assert np.all(out[[1, 3]] == 0)
    np.testing.assert_array_equal(out[[0, 2]], backend.numpy(x)[[0, 2]] * 2)
    np.testing.assert_array_equal(backend.numpy(returned), backend.numpy(mask.data))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("memory", MEMORY_MODES)
def test_float_dtype_in_same_dtype_out(backend, dtype, memory):
    x = backend.randn(5, 6, seed=0, dtype=dtype, requires_grad=True)
    y = Dropout(0.3, memory=memory, generator=random.Generator(0))(x)
    y.backward(backend.randn(5, 6, seed=1, dtype=dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert Dropout(0.3, scaling="classic").eval()(x).dtype == dtype


@pytest.mark.parametrize("memory,expected", [("bytes", 8 * 100), ("bits", 100), ("seed", 0)])
def test_mask_bytes_per_memory_mode(memory, expected):
    layer = Dropout(0.5, memory=memory)
    layer(minigrad.Tensor(np.ones((8, 100), np.float32), requires_grad=True))
    assert layer.last_mask_bytes == expected
    model = Sequential(layer, Dropout(0.5, memory="bytes"))
    model(minigrad.Tensor(np.ones((8, 100), np.float32), requires_grad=True))
    assert mask_bytes(model) == expected + 800
    model.eval()
    model(minigrad.Tensor(np.ones((8, 100), np.float32), requires_grad=True))
    assert mask_bytes(model) == 0


def test_mask_bytes_is_zero_when_no_graph_is_recorded():
    model = Sequential(Linear(10, 20), Dropout(0.5))
    with minigrad.no_grad():
        model(minigrad.Tensor(np.ones((4, 10), np.float32)))
    assert mask_bytes(model) == 0
    model(minigrad.Tensor(np.ones((4, 10), np.float32)))
    assert mask_bytes(model) == 80


def test_train_and_eval_on_sequential_switch_dropout():
    model = Sequential(Linear(20, 50, generator=random.Generator(0)),
                       Dropout(0.5, generator=random.Generator(1)))
    x = minigrad.Tensor(np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32))
    dense = model[0](x).numpy()
    model.eval()
    assert not model[1].training
    np.testing.assert_array_equal(model(x).numpy(), dense)
    model.train()
    assert model[1].training
    out = model(x).numpy()
    dropped = out == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_array_equal(out[~dropped], dense[~dropped] * 2)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_p_out_of_range_raises(p):
    x = minigrad.Tensor(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="probability of zeroing"):
        dropout(x, p)
    with pytest.raises(ValueError, match="probability of zeroing"):
        Dropout(p)


def test_p_of_wrong_type_raises():
    with pytest.raises(TypeError, match="must be a number"):
        Dropout("0.5")


def test_non_float_input_raises(backend):
    x = backend.tensor(np.arange(6))
    with pytest.raises(TypeError, match="floating-point input"):
        dropout(x, 0.5)
    with pytest.raises(TypeError, match="floating-point input"):
        dropout(x, 0.5, training=False)


def test_bad_scaling_and_memory_strings_raise():
    x = minigrad.Tensor(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="scaling must be 'inverted'"):
        dropout(x, 0.5, scaling="inverse")
    with pytest.raises(ValueError, match="memory must be one of"):
        dropout(x, 0.5, memory="byte")
    with pytest.raises(ValueError, match="scaling must be"):
        Dropout(0.5, scaling="Classic")
    with pytest.raises(ValueError, match="memory must be one of"):
        Dropout(0.5, memory="mask")


def test_bad_masks_raise():
    x = minigrad.Tensor(np.ones((3, 4), np.float32))
    with pytest.raises(TypeError, match="bool array"):
        dropout(x, 0.5, mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        dropout(x, 0.5, mask=np.ones((4, 3), bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        dropout(x, 0.5, mask_shape=(3, 2))
    with pytest.raises(ValueError, match="memory='seed' redraws"):
        dropout(x, 0.5, mask=np.ones((3, 4), bool), memory="seed")
    with pytest.raises(TypeError, match="generator must be"):
        dropout(x, 0.5, generator=np.random.default_rng(0))


def test_op_keeps_mask_bytes_of_its_memory_mode():
    x = minigrad.Tensor(np.ones((16, 16), np.float32), requires_grad=True)
    sizes = {}
    for memory in MEMORY_MODES:
        op = MaskedScale(0.5, memory=memory)
        op(x)
        sizes[memory] = op.mask_bytes
    assert sizes == {"bytes": 256, "bits": 32, "seed": 0}
