"""Conv2d (im2col), MaxPool2d and AvgPool2d: values against direct loops and SciPy, gradients,
tie-breaking, dtype, argument errors, and the layers."""

import numpy as np
import pytest
import scipy.signal

import layers
import minigrad
from layers.conv import AvgPool2d, Conv2d, MaxPool2d
from minigrad.ops.conv import avg_pool2d, conv2d, max_pool2d
from minigrad.random import Generator


def naive_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """The definition, one output element at a time (slow, obviously right)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, o, oh, ow))
    per_group = o // groups
    for img in range(n):
        for oc in range(o):
            first = (oc // per_group) * cg
            for p in range(oh):
                for q in range(ow):
                    total = 0.0 if b is None else b[oc]
                    for ic in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                total += w[oc, ic, i, j] * xp[
                                    img, first + ic, p * stride + i * dilation,
                                    q * stride + j * dilation]
                    y[img, oc, p, q] = total
    return y


def naive_pool(x, k, stride, padding, reduce, fill):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                constant_values=fill)
    oh = (h + 2 * padding - k) // stride + 1
    ow = (w + 2 * padding - k) // stride + 1
    y = np.zeros((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            window = xp[:, :, p * stride:p * stride + k, q * stride:q * stride + k]
            y[:, :, p, q] = reduce(window, axis=(2, 3))
    return y


def _conv_case(stride, padding, dilation, groups, bias, seed):
    def case(backend):
        x = backend.randn(2, 4, 5, 6, seed=seed, requires_grad=True)
        w = backend.randn(4, 4 // groups, 3, 2, seed=seed + 1, requires_grad=True)
        inputs = [x, w]
        if bias:
            inputs.append(backend.randn(4, seed=seed + 2, requires_grad=True))

        def fn(x, w, b=None):
            return conv2d(x, w, b, stride, padding, dilation, groups)
        return fn, inputs
    return case


def _pool_case(pool, k, stride, padding, seed):
    def case(backend):
        x = backend.randn(2, 3, 5, 6, seed=seed, requires_grad=True)
        return (lambda x: pool(x, k, stride, padding)), [x]
    return case


GRADCHECK_CASES = {
    "Conv2d": [_conv_case(1, 1, 1, 1, True, 0), _conv_case(2, 0, 2, 2, False, 10),
               _conv_case((2, 1), (1, 0), 1, 4, True, 20)],
    "MaxPool2d": [_pool_case(max_pool2d, 2, None, 0, 30), _pool_case(max_pool2d, 3, 1, 1, 31)],
    "AvgPool2d": [_pool_case(avg_pool2d, 2, None, 0, 40), _pool_case(avg_pool2d, 3, 2, 1, 41)],
}


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (3, 1, 1, 2), (1, 1, 1, 4)])
def test_conv2d_matches_naive_loops(backend, stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((8, 4 // groups, 3, 2))
    b = rng.standard_normal(8)
    y = conv2d(backend.tensor(x), backend.tensor(w), backend.tensor(b), stride, padding,
               dilation, groups)
    expected = naive_conv2d(x, w, b, stride, padding, dilation, groups)
    np.testing.assert_allclose(backend.numpy(y), expected, rtol=1e-12, atol=1e-12)


def test_conv2d_matches_scipy_correlate(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 8, 9))
    w = rng.standard_normal((4, 2, 3, 4))
    y = backend.numpy(conv2d(backend.tensor(x), backend.tensor(w)))
    for n in range(3):
        for o in range(4):
            expected = sum(scipy.signal.correlate(x[n, c], w[o, c], mode="valid")
                           for c in range(2))
            np.testing.assert_allclose(y[n, o], expected, rtol=1e-12, atol=1e-12)


def test_conv2d_backward_matches_transposed_correlation():
    # grad_x of a stride-1 valid correlation is the full convolution of grad_out with w
    rng = np.random.default_rng(3)
    x = minigrad.Tensor(rng.standard_normal((1, 1, 6, 5)), requires_grad=True)
    w = minigrad.Tensor(rng.standard_normal((1, 1, 3, 2)), requires_grad=True)
    grad_out = rng.standard_normal((1, 1, 4, 4))
    conv2d(x, w).backward(grad_out)
    expected = scipy.signal.convolve(grad_out[0, 0], w.data[0, 0], mode="full")
    np.testing.assert_allclose(x.grad[0, 0], expected, rtol=1e-12, atol=1e-12)


def test_conv2d_float32_in_float32_out(backend):
    x = backend.randn(1, 2, 5, 5, dtype=np.float32, requires_grad=True)
    w = backend.randn(3, 2, 3, 3, seed=1, dtype=np.float32, requires_grad=True)
    b = backend.randn(3, seed=2, dtype=np.float32, requires_grad=True)
    y = conv2d(x, w, b, padding=1)
    y.backward(backend.xp.ones(y.shape, dtype=np.float32))
    assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


@pytest.mark.parametrize("kwargs,shape_x,shape_w,match", [
    ({}, (1, 3, 5, 5), (2, 2, 3, 3), "input has 3 channels"),
    ({"groups": 2}, (1, 4, 5, 5), (3, 2, 3, 3), "divisible by groups"),
    ({}, (3, 5, 5), (2, 3, 3, 3), r"expected input \(N, C, H, W\)"),
    ({}, (1, 2, 2, 2), (2, 2, 3, 3), "window spans 3 pixels"),
])
def test_conv2d_rejects_mismatched_shapes(backend, kwargs, shape_x, shape_w, match):
    with pytest.raises(ValueError, match=match):
        conv2d(backend.randn(*shape_x), backend.randn(*shape_w), **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"stride": 0}, "stride must be an int >= 1"),
    ({"padding": -1}, "padding must be an int >= 0"),
    ({"dilation": (1, 2, 3)}, "dilation must be an int >= 1 or a pair"),
    ({"groups": 0}, "groups must be a positive int"),
])
def test_conv2d_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv2d(minigrad.Tensor(np.zeros((1, 1, 4, 4))), minigrad.Tensor(np.zeros((1, 1, 2, 2))),
               **kwargs)


def test_conv2d_rejects_wrong_bias_shape():
    with pytest.raises(ValueError, match=r"bias shape \(3,\) must be \(2,\)"):
        conv2d(minigrad.Tensor(np.zeros((1, 1, 4, 4))), minigrad.Tensor(np.zeros((2, 1, 2, 2))),
               minigrad.Tensor(np.zeros(3)))


@pytest.mark.parametrize("k,stride,padding", [(2, 2, 0), (3, 1, 1), (3, 2, 0), (2, 1, 1)])
def test_max_pool_matches_naive_loops(backend, k, stride, padding):
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6))
    y = max_pool2d(backend.tensor(x), k, stride, padding)
    expected = naive_pool(x, k, stride, padding, np.max, -np.inf)
    np.testing.assert_array_equal(backend.numpy(y), expected)


@pytest.mark.parametrize("k,stride,padding", [(2, 2, 0), (3, 1, 1), (3, 2, 0)])
def test_avg_pool_matches_naive_loops(backend, k, stride, padding):
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 6))
    y = avg_pool2d(backend.tensor(x), k, stride, padding)
    expected = naive_pool(x, k, stride, padding, np.mean, 0.0)
    np.testing.assert_allclose(backend.numpy(y), expected, rtol=1e-12)


def test_max_pool_gradient_goes_to_the_window_maximum_only(backend):
    x = backend.randn(2, 3, 4, 4, seed=6, requires_grad=True)
    grad_out = np.random.default_rng(7).standard_normal((2, 3, 2, 2))
    max_pool2d(x, 2).backward(backend.array(grad_out))
    grad = backend.numpy(x.grad).reshape(2, 3, 2, 2, 2, 2)     # (N, C, OH, KH, OW, KW)
    values = backend.numpy(x).reshape(2, 3, 2, 2, 2, 2)
    is_max = values == values.max(axis=(3, 5), keepdims=True)
    np.testing.assert_array_equal(grad, np.where(is_max, grad_out[:, :, :, None, :, None], 0))


def test_max_pool_ties_go_to_the_first_maximum_in_window_order(backend):
    # window [[1, 5], [5, 5]]: the three 5s tie; the first in row-major order is (0, 1)
    x = backend.tensor([[[[1.0, 5.0], [5.0, 5.0]]]], requires_grad=True, dtype=np.float64)
    max_pool2d(x, 2).backward(backend.array([[[[3.0]]]]))
    np.testing.assert_array_equal(backend.numpy(x.grad), [[[[0.0, 3.0], [0.0, 0.0]]]])


def test_max_pool_of_a_constant_image_routes_each_window_to_its_top_left(backend):
    x = backend.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    max_pool2d(x, 2).backward(backend.array(np.ones((1, 1, 2, 2))))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(backend.numpy(x.grad)[0, 0], expected)


def test_overlapping_avg_pool_gradient_counts_windows_per_pixel(backend):
    # stride 1, kernel 2 on 3x3: the centre pixel lies in all 4 windows, corners in 1
    x = backend.tensor(np.zeros((1, 1, 3, 3)), requires_grad=True)
    avg_pool2d(x, 2, 1).backward(backend.array(np.ones((1, 1, 2, 2))))
    np.testing.assert_allclose(backend.numpy(x.grad)[0, 0],
                               np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4)


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_pool_float32_in_float32_out(backend, pool):
    x = backend.randn(1, 2, 4, 4, dtype=np.float32, requires_grad=True)
    y = pool(x, 2)
    y.backward(backend.xp.ones(y.shape, dtype=np.float32))
    assert y.dtype == x.grad.dtype == np.float32


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_pool_rejects_bad_arguments(pool):
    x = minigrad.Tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="at most half the kernel"):
        pool(x, 2, padding=2)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        pool(x, 0)
    with pytest.raises(ValueError, match=r"expected input \(N, C, H, W\)"):
        pool(minigrad.Tensor(np.zeros((4, 4))), 2)


def test_conv_layer_output_shape_and_parameters(backend):
    layer = Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2, device=backend.device,
                   generator=Generator(0))
    y = layer(backend.randn(2, 4, 9, 8, dtype=np.float32))
    assert y.shape == (2, 6, 5, 5)
    assert layer.weight.shape == (6, 2, 3, 2) and layer.bias.shape == (6,)
    bound = 1 / np.sqrt(2 * 3 * 2)
    assert np.all(np.abs(backend.numpy(layer.weight)) <= bound)
    assert layer.num_parameters() == 6 * 2 * 3 * 2 + 6


def test_conv_layer_is_reproducible_from_its_generator():
    a = Conv2d(2, 3, 3, generator=Generator(5))
    b = Conv2d(2, 3, 3, generator=Generator(5))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())


def test_conv_layer_rejects_groups_not_dividing_channels():
    with pytest.raises(ValueError, match="dividing in_channels"):
        Conv2d(4, 6, 3, groups=4)


def test_small_cnn_trains_end_to_end(backend):
    # conv -> relu -> maxpool -> flatten -> linear: every parameter receives a gradient
    gen = Generator(1)
    model = layers.Sequential(
        Conv2d(1, 2, 3, padding=1, device=backend.device, generator=gen), layers.ReLU(),
        MaxPool2d(2), AvgPool2d(2, stride=1), layers.Flatten(),
        layers.Linear(8, 3, device=backend.device, generator=gen))
    y = model(backend.randn(4, 1, 6, 6, dtype=np.float32))
    assert y.shape == (4, 3)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
