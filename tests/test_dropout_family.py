"""The rest of the dropout family: channel, token, locked, path, block, connect, Gaussian and
alpha dropout. Each is the one op with another mask shape, or another noise."""

import numpy as np
import pytest
import scipy.stats

import minigrad
from conftest import Backend
from layers import Sequential
from layers.dropout import (Dropout, Dropout1d, Dropout2d, Dropout3d, DropPath, LockedDropout,
                            TokenDropout, drop_path_rates)
from layers.dropout_noise import (ALPHA_PRIME, AlphaDropout, GaussianDropout,
                                  alpha_dropout_affine)
from layers.dropout_structured import DropBlock2d, DropConnectLinear
from minigrad import random
from minigrad.ops.dropout import MEMORY_MODES, dropout

SHAPED = {   # layer class -> an input shape it accepts
    Dropout: (3, 4),
    Dropout1d: (2, 3, 4), Dropout2d: (2, 3, 2, 2), Dropout3d: (2, 2, 2, 1, 2),
    TokenDropout: (2, 3, 2), LockedDropout: (2, 3, 2), DropPath: (3, 2, 2),
}


def _layer_case(make, shape, training=True):
    """fn builds the layer anew with a fresh Generator(3): the same mask on every call."""
    def case(backend):
        def fn(x):
            layer = make(random.Generator(3))
            return layer(x) if training else layer.eval()(x)
        return fn, [backend.randn(*shape, seed=1, requires_grad=True)]
    return case


def _connect_case(scaling, training, memory="bytes"):
    def case(backend):
        def fn(x, w, b):
            layer = DropConnectLinear(3, 2, p=0.5, scaling=scaling, memory=memory,
                                      generator=random.Generator(3), dtype=np.float64)
            layer.weight, layer.bias = w, b
            return layer(x) if training else layer.eval()(x)
        inputs = [backend.randn(4, 3, seed=1, requires_grad=True),
                  backend.randn(2, 3, seed=2, requires_grad=True),
                  backend.randn(2, seed=3, requires_grad=True)]
        return fn, inputs
    return case


def _shaped_cases():
    cases = []
    for cls, shape in SHAPED.items():
        for scaling in ("inverted", "classic"):
            for training in (True, False):
                cases.append(_layer_case(
                    lambda g, cls=cls, s=scaling: cls(0.5, scaling=s, generator=g), shape,
                    training))
    for scaling in ("inverted", "classic"):
        for training in (True, False):
            cases.append(_layer_case(
                lambda g, s=scaling: DropBlock2d(0.3, 2, scaling=s, generator=g), (1, 2, 4, 3),
                training))
            cases.append(_connect_case(scaling, training))
    cases.append(_layer_case(lambda g: DropBlock2d(0.3, 2, memory="bits", generator=g),
                             (1, 2, 4, 3)))
    cases += [_connect_case("inverted", True, m) for m in ("bits", "seed")]
    return cases


GRADCHECK_CASES = {
    "MaskedScale": _shaped_cases(),
    "MultiplicativeNoise": [
        _layer_case(lambda g, m=m: GaussianDropout(0.3, memory=m, generator=g), (3, 4))
        for m in ("bytes", "seed")] + [
        _layer_case(lambda g: GaussianDropout(0.3, generator=g), (3, 4), training=False)],
    "AlphaDrop": [
        _layer_case(lambda g, m=m: AlphaDropout(0.3, memory=m, generator=g), (3, 4))
        for m in MEMORY_MODES] + [
        _layer_case(lambda g: AlphaDropout(0.3, generator=g), (3, 4), training=False)],
}


def _positive(backend, shape, seed=0, dtype=np.float32):
    values = np.abs(np.random.default_rng(seed).standard_normal(shape)) + 0.5
    return backend.tensor(values.astype(dtype), requires_grad=True)


def _zero_groups(y, group_axes):
    """Per group (the axes not in ``group_axes``): all zero (True), none zero (False)."""
    zero = y == 0
    all_zero, any_zero = zero.all(axis=group_axes), zero.any(axis=group_axes)
    assert np.array_equal(all_zero, any_zero), "a group is partly zeroed"
    return all_zero


@pytest.mark.parametrize("cls,shape,axes", [
    (Dropout1d, (6, 8, 5), (2,)), (Dropout2d, (6, 8, 3, 4), (2, 3)),
    (Dropout3d, (4, 8, 2, 3, 2), (2, 3, 4)), (TokenDropout, (6, 7, 5), (2,)),
    (DropPath, (40, 3, 2), (1, 2)),
])
def test_structured_dropout_zeroes_whole_groups(backend, cls, shape, axes):
    x = _positive(backend, shape)
    y = backend.numpy(cls(0.5, generator=random.Generator(1))(x))
    dropped = _zero_groups(y, axes)
    assert dropped.any() and not dropped.all()
    kept = np.broadcast_to(np.expand_dims(~dropped, axes), y.shape)
    np.testing.assert_array_equal(y[kept], backend.numpy(x)[kept] * 2)


def test_locked_dropout_shares_one_mask_across_time(backend):
    x = _positive(backend, (4, 9, 6))
    y = backend.numpy(LockedDropout(0.5, generator=random.Generator(2))(x))
    zero = y == 0
    assert zero.any() and not zero.all()
    for t in range(9):
        np.testing.assert_array_equal(zero[:, t], zero[:, 0])


@pytest.mark.parametrize("cls,shape", [
    (Dropout1d, (2, 3)), (Dropout2d, (2, 3, 4)), (Dropout3d, (2, 3, 4, 5)),
    (LockedDropout, (2, 3)), (DropBlock2d, (2, 3, 4)),
])
def test_wrong_rank_raises(cls, shape):
    with pytest.raises(ValueError, match="expects input of shape"):
        cls(0.5)(minigrad.Tensor(np.ones(shape, np.float32)))


def test_drop_path_rates_grow_linearly():
    assert drop_path_rates(5, 0.2) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert drop_path_rates(1, 0.3) == [0.0]
    with pytest.raises(ValueError, match="depth must be a positive int"):
        drop_path_rates(0, 0.1)
    with pytest.raises(ValueError, match="probability of zeroing"):
        drop_path_rates(4, 1.5)


def test_drop_path_in_residual_keeps_identity_for_dropped_samples():
    x = _positive(Backend("numpy"), (50, 4))
    branch = DropPath(0.5, generator=random.Generator(0))(x * 3.0)
    out = (x + branch).numpy()
    dropped = _zero_groups(branch.numpy(), (1,))
    np.testing.assert_array_equal(out[dropped], x.numpy()[dropped])
    np.testing.assert_allclose(out[~dropped], 7 * x.numpy()[~dropped], rtol=1e-6)


def _all_zero_windows(zero, bs):
    """Union of every bs x bs window of ``zero`` (H, W) that is entirely True."""
    height, width = zero.shape
    union = np.zeros_like(zero)
    for i in range(height - bs + 1):
        for j in range(width - bs + 1):
            if zero[i:i + bs, j:j + bs].all():
                union[i:i + bs, j:j + bs] = True
    return union


@pytest.mark.parametrize("bs,height,width", [(3, 12, 9), (2, 10, 7), (4, 8, 11), (1, 5, 6)])
def test_dropblock_zeroes_square_blocks(backend, bs, height, width):
    x = _positive(backend, (2, 3, height, width))
    y = backend.numpy(DropBlock2d(0.25, bs, generator=random.Generator(5))(x))
    zero = y == 0
    assert zero.any()
    for n in range(2):
        for c in range(3):
            # every zero lies in a full bs x bs square of zeros inside the map
            np.testing.assert_array_equal(_all_zero_windows(zero[n, c], bs), zero[n, c])


def _expected_drop_fraction(p, bs, height, width):
    """E[fraction dropped]: position (i, j) survives if none of its covering seeds fires."""
    rows, cols = height - bs + 1, width - bs + 1
    gamma = p / bs ** 2 * (height * width) / (rows * cols)
    cover_r = [min(i, rows - 1) - max(0, i - bs + 1) + 1 for i in range(height)]
    cover_c = [min(j, cols - 1) - max(0, j - bs + 1) + 1 for j in range(width)]
    covers = np.outer(cover_r, cover_c)
    return float(np.mean(1 - (1 - gamma) ** covers))


@pytest.mark.parametrize("bs,height,width", [(3, 24, 24), (4, 20, 28)])
def test_dropblock_drop_fraction_is_near_target(bs, height, width):
    p = 0.1
    x = minigrad.Tensor(np.ones((32, 16, height, width), np.float32))
    y = DropBlock2d(p, bs, generator=random.Generator(6))(x).numpy()
    per_map = (y == 0).mean(axis=(2, 3)).ravel()
    observed = per_map.mean()
    standard_error = per_map.std(ddof=1) / np.sqrt(per_map.size)
    # the exact expectation (blocks overlap, so it is a little below p), within 5 s.e.
    assert abs(observed - _expected_drop_fraction(p, bs, height, width)) < 5 * standard_error
    # and the target itself within 15% (the overlap costs about gamma * bs**2 / 2 ~ 6%)
    assert abs(observed - p) < 0.15 * p


def test_dropblock_rescales_by_kept_fraction_and_classic_does_not(backend):
    x = _positive(backend, (2, 2, 9, 9))
    y = backend.numpy(DropBlock2d(0.3, 3, generator=random.Generator(1))(x))
    kept = y != 0
    scale = np.float32(kept.size / kept.sum())
    np.testing.assert_array_equal(y[kept], backend.numpy(x)[kept] * scale)
    classic = DropBlock2d(0.3, 3, scaling="classic", generator=random.Generator(1))
    y_classic = backend.numpy(classic(x))
    np.testing.assert_array_equal(y_classic[kept], backend.numpy(x)[kept])
    assert np.all(y_classic[~kept] == 0)
    np.testing.assert_array_equal(backend.numpy(classic.eval()(x)),
                                  backend.numpy(x) * np.float32(0.7))
    assert DropBlock2d(0.3, 3).eval()(x) is x


@pytest.mark.parametrize("memory", ["bytes", "bits"])
def test_dropblock_backward_reuses_forward_mask(backend, memory):
    x = _positive(backend, (2, 3, 7, 6))
    y = DropBlock2d(0.3, 2, memory=memory, generator=random.Generator(2))(x)
    g = np.random.default_rng(1).standard_normal((2, 3, 7, 6)).astype(np.float32)
    y.backward(backend.array(g))
    out = backend.numpy(y)
    kept = out != 0
    scale = np.float32(kept.size / kept.sum())
    np.testing.assert_array_equal(backend.numpy(x.grad), np.where(kept, g * scale, 0))


def test_dropblock_bad_arguments_raise():
    x = minigrad.Tensor(np.ones((1, 1, 5, 8), np.float32))
    with pytest.raises(ValueError, match="block_size 6 is larger than the feature map"):
        DropBlock2d(0.1, 6)(x)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        DropBlock2d(0.1, 0)
    with pytest.raises(ValueError, match="memory must be one of 'bytes', 'bits'"):
        DropBlock2d(0.1, 3, memory="seed")


def _connect_mask(layer, x):
    """Run ``layer`` on x and return (y, M): M redrawn from the generator state it used."""
    state = layer.generator.get_state()
    y = layer(x)
    replay = random.Generator()
    replay.set_state(state)
    mask = dropout(layer.weight, layer.p, generator=replay, return_mask=True)[1]
    return y, mask


@pytest.mark.parametrize("memory", MEMORY_MODES)
@pytest.mark.parametrize("scaling", ["inverted", "classic"])
def test_dropconnect_masks_weights(backend, memory, scaling):
    layer = DropConnectLinear(6, 4, p=0.4, scaling=scaling, memory=memory,
                              generator=random.Generator(0), dtype=np.float64)
    layer.to(backend.device)
    x = backend.randn(5, 6, seed=1, requires_grad=True)
    y, mask = _connect_mask(layer, x)
    w, b, xs = backend.numpy(layer.weight.data), backend.numpy(layer.bias.data), backend.numpy(x)
    mask = backend.numpy(mask)
    s = 1 / 0.6 if scaling == "inverted" else 1.0
    np.testing.assert_allclose(backend.numpy(y), xs @ (mask * w * s).T + b, rtol=1e-12)
    g = np.random.default_rng(2).standard_normal((5, 4))
    y.backward(backend.array(g))
    np.testing.assert_allclose(backend.numpy(layer.weight.grad), mask * (g.T @ xs) * s,
                               rtol=1e-12)
    np.testing.assert_allclose(backend.numpy(layer.bias.grad), g.sum(axis=0), rtol=1e-12)
    eval_w = w * (0.6 if scaling == "classic" else 1.0)
    np.testing.assert_allclose(backend.numpy(layer.eval()(x)), xs @ eval_w.T + b, rtol=1e-12)


@pytest.mark.parametrize("memory", ["bytes", "seed"])
def test_gaussian_dropout_noise_has_mean_one_and_variance_p_over_keep(memory):
    p, n = 0.3, 200_000
    x = minigrad.Tensor(np.ones(n), requires_grad=True)
    y = GaussianDropout(p, memory=memory, generator=random.Generator(4))(x)
    noise = y.numpy()
    sigma2 = p / (1 - p)
    assert abs(noise.mean() - 1) < 5 * np.sqrt(sigma2 / n)
    # (n-1) s^2 / sigma^2 ~ chi2(n-1); two-sided p-value
    stat = (n - 1) * noise.var(ddof=1) / sigma2
    chi2 = scipy.stats.chi2(n - 1)
    assert 2 * min(chi2.cdf(stat), chi2.sf(stat)) > 1e-4
    g = np.random.default_rng(1).standard_normal(n)
    y.backward(g)
    np.testing.assert_array_equal(x.grad, g * noise)   # the forward's noise, not a new draw


def test_gaussian_dropout_eval_identity_and_errors():
    x = minigrad.Tensor(np.ones(5, np.float32))
    assert GaussianDropout(0.5).eval()(x) is x
    with pytest.raises(ValueError, match="p=1 is not allowed"):
        GaussianDropout(1.0)
    with pytest.raises(ValueError, match="memory must be one of 'bytes', 'seed'"):
        GaussianDropout(0.5, memory="bits")


@pytest.mark.parametrize("memory", MEMORY_MODES)
def test_alpha_dropout_keeps_mean_zero_and_variance_one(memory):
    n = 1_000_000
    x_np = np.random.default_rng(0).standard_normal(n)
    x = minigrad.Tensor(x_np, requires_grad=True)
    y = AlphaDropout(0.2, memory=memory, generator=random.Generator(3))(x)
    out = y.numpy()
    assert abs(out.mean()) < 5 / np.sqrt(n)
    sq = (out - out.mean()) ** 2
    assert abs(sq.mean() - 1) < 5 * sq.std() / np.sqrt(n)
    a, b = alpha_dropout_affine(0.2)
    dropped = np.isclose(out, a * ALPHA_PRIME + b, rtol=0, atol=1e-12)
    assert scipy.stats.binomtest(int(dropped.sum()), n, 0.2).pvalue > 1e-4
    np.testing.assert_allclose(out[~dropped], a * x_np[~dropped] + b, rtol=1e-12)
    g = np.random.default_rng(1).standard_normal(n)
    y.backward(g)
    np.testing.assert_array_equal(x.grad, np.where(dropped, 0.0, a * g))


def test_alpha_dropout_eval_identity_and_errors():
    x = minigrad.Tensor(np.ones(5, np.float32))
    assert AlphaDropout(0.5).eval()(x) is x
    assert alpha_dropout_affine(0.0) == (1.0, 0.0)
    with pytest.raises(ValueError, match="p=1 is not allowed"):
        AlphaDropout(1.0)


FAMILY = [   # shapes large enough that two draws in a row differ
    (lambda g: Dropout(0.3, generator=g), (4, 6)),
    (lambda g: Dropout1d(0.3, generator=g), (4, 8, 3)),
    (lambda g: Dropout2d(0.3, generator=g), (4, 8, 2, 2)),
    (lambda g: Dropout3d(0.3, generator=g), (4, 8, 2, 2, 2)),
    (lambda g: TokenDropout(0.3, generator=g), (4, 8, 4)),
    (lambda g: LockedDropout(0.3, generator=g), (4, 3, 8)),
    (lambda g: DropPath(0.3, generator=g), (32, 3, 2)),
    (lambda g: DropBlock2d(0.3, 2, generator=g), (2, 2, 5, 4)),
    (lambda g: DropConnectLinear(8, 6, 0.3, generator=g), (5, 8)),
    (lambda g: GaussianDropout(0.3, generator=g), (4, 6)),
    (lambda g: AlphaDropout(0.3, generator=g), (4, 6)),
]


@pytest.mark.parametrize("make,shape", FAMILY[:8] + FAMILY[9:])   # DropConnect masks weights
def test_family_rejects_integer_input(make, shape):
    with pytest.raises(TypeError, match="floating-point input"):
        make(random.Generator(0))(minigrad.Tensor(np.ones(shape, np.int64)))


@pytest.mark.parametrize("make,shape", FAMILY)
def test_family_float32_in_float32_out(backend, make, shape):
    layer = make(random.Generator(0)).to(backend.device)
    x = backend.randn(*shape, seed=0, dtype=np.float32, requires_grad=True)
    y = layer(x)
    y.backward(backend.randn(*y.shape, seed=1, dtype=np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    assert layer.eval()(x).dtype == np.float32


@pytest.mark.parametrize("make,shape", FAMILY)
def test_family_same_seed_same_output_on_numpy_and_strict(make, shape):
    outputs = []
    for name in ("numpy", "strict"):
        b = Backend(name)
        layer = make(random.Generator(9)).to(b.device)
        outputs.append(b.numpy(layer(b.randn(*shape, seed=0, dtype=np.float32))))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("make,shape", FAMILY)
def test_family_train_and_eval_switch_through_sequential(make, shape):
    layer = make(random.Generator(0))
    model = Sequential(layer)
    x = minigrad.Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    model.eval()
    assert not layer.training
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())   # deterministic
    model.train()
    assert layer.training
    assert not np.array_equal(model(x).numpy(), model(x).numpy())       # a new draw each call
