"""Convolution and pooling on (N, C, H, W) images: conv2d (via im2col), max_pool2d, avg_pool2d.

All three are written the same way: a loop over the KH*KW kernel offsets (never over images
or pixels). For offset (i, j), one strided slice of the padded input holds, for every output
position at once, the input pixel that the kernel's entry (i, j) sees:

    xp_pad[:, :, i*dh : i*dh + sh*(OH-1) + 1 : sh, j*dw : j*dw + sw*(OW-1) + 1 : sw]
        -> shape (N, C, OH, OW)

(dh, dw: dilation; sh, sw: stride.) The backward runs the same loop and adds each offset's
gradient back into the same slice with ``+=``: a pixel seen by several offsets (overlapping
windows) collects the sum of their gradients. Plain slicing works identically on NumPy, CuPy
and the strict backend; no stride tricks are needed.

Output size along one axis: OH = (H + 2*pad - dilation*(KH - 1) - 1) // stride + 1.
"""

import math

from minigrad.autograd import Function


def _pair(value, name, minimum):
    """An int or a pair of ints -> a pair of ints >= minimum; a clear error otherwise."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair


def _out_size(size, kernel, stride, pad, dilation, what):
    span = dilation * (kernel - 1) + 1   # the extent of one dilated window
    if size + 2 * pad < span:
        raise ValueError(
            f"{what}: the window spans {span} pixels but the padded input has only "
            f"{size + 2 * pad}; use a smaller kernel or dilation, or more padding")
    return (size + 2 * pad - span) // stride + 1


def _pad(xp, x, padding, value=0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _unpad(grad_padded, padding):
    ph, pw = padding
    h, w = grad_padded.shape[2:]
    return grad_padded[:, :, ph:h - ph, pw:w - pw]


def _windows(kernel, stride, dilation, out_hw):
    """For each kernel offset (i, j): (i, j, the slices of the padded input it sees)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            yield i, j, (slice(None), slice(None), rows, cols)


def _im2col(xp, x_pad, kernel, stride, dilation, out_hw):
    """cols[:, :, i, j] = what kernel offset (i, j) sees, for every output pixel at once."""
    n, c = x_pad.shape[:2]
    cols = xp.empty((n, c) + kernel + out_hw, dtype=x_pad.dtype)   # (N, C, KH, KW, OH, OW)
    for i, j, window in _windows(kernel, stride, dilation, out_hw):
        cols[:, :, i, j] = x_pad[window]
    return cols


def _col2im(xp, grad_cols, x_pad_shape, stride, dilation):
    """The backward of _im2col: add each offset's gradient back where the forward read it."""
    kernel, out_hw = grad_cols.shape[2:4], grad_cols.shape[4:]
    grad_pad = xp.zeros(x_pad_shape, dtype=grad_cols.dtype)
    for i, j, window in _windows(kernel, stride, dilation, out_hw):
        grad_pad[window] += grad_cols[:, :, i, j]    # += : overlapping windows add up
    return grad_pad


class Conv2d(Function):
    """2-D cross-correlation (what deep learning calls convolution), computed by im2col.

    Forward:  y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j]
                                     * x_pad[n, r*Cg + c, p*sh + i*dh, q*sw + j*dw]
              where r = o // (O / groups) is the group of output channel o, Cg = C / groups.
              im2col copies, for each kernel offset (i, j), the input pixels that offset sees
              into cols[:, :, i, j] (N, C, OH, OW). Then y is one batched matmul per group,
              y = w_rows @ cols_rows, contracting over K = Cg*KH*KW.
    Backward: grad_w    = sum over images of grad_rows @ cols_rows^T
              grad_cols = w_rows^T @ grad_rows
              grad_x    = col2im(grad_cols): for each offset, add grad_cols[:, :, i, j] into
                          the slice of the padded gradient that the forward read; then crop
                          the padding
              grad_b    = grad_out summed over N, OH, OW
              (grad_rows is grad_out in the layout of the forward's matmul output)
    Shapes:   x (N, C, H, W), w (O, Cg, KH, KW), b (O,) or absent -> y (N, O, OH, OW)
              cols_rows (N, groups, K, L), w_rows (groups, O/groups, K), L = OH*OW
    Saves:    cols_rows, w_rows, and the shapes of w and of the padded input
    """

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        self.stride = _pair(stride, "conv2d: stride", 1)
        self.padding = _pair(padding, "conv2d: padding", 0)
        self.dilation = _pair(dilation, "conv2d: dilation", 1)
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
        self.groups = groups

    def forward(self, x, w, b=None):
        self._check_shapes(x, w, b)
        n, g = x.shape[0], self.groups
        o, cg, kh, kw = w.shape
        out_hw = tuple(_out_size(x.shape[2 + a], w.shape[2 + a], self.stride[a],
                                 self.padding[a], self.dilation[a], "conv2d") for a in (0, 1))
        x_pad = _pad(self.xp, x, self.padding)
        cols = _im2col(self.xp, x_pad, (kh, kw), self.stride, self.dilation, out_hw)
        # (N, C, KH, KW, OH, OW) -> (N, groups, K, L): the channels are group-major
        self.cols_rows = cols.reshape(n, g, cg * kh * kw, -1)
        # (O, Cg, KH, KW) -> (groups, O/groups, K)
        self.w_rows = w.reshape(g, o // g, cg * kh * kw)
        self.w_shape, self.x_pad_shape = w.shape, x_pad.shape
        # (groups, O/g, K) @ (N, groups, K, L) -> (N, groups, O/g, L) -> (N, O, OH, OW)
        y = (self.w_rows @ self.cols_rows).reshape((n, o) + out_hw)
        if b is not None:
            y += b.reshape(1, o, 1, 1)
        return y

    def backward(self, grad_out):
        n, o, oh, ow = grad_out.shape
        need_x, need_w = self.needs_input_grad[:2]
        # (N, O, OH, OW) -> (N, groups, O/g, L)
        grad_rows = grad_out.reshape(n, self.groups, o // self.groups, oh * ow)
        grad_x = grad_w = None
        if need_w:
            # (N, g, O/g, L) @ (N, g, L, K) -> (N, g, O/g, K), summed over the images
            grad_w = (grad_rows @ self.cols_rows.swapaxes(-1, -2)).sum(axis=0)
            grad_w = grad_w.reshape(self.w_shape)
        if need_x:
            # (g, K, O/g) @ (N, g, O/g, L) -> (N, g, K, L) -> (N, C, KH, KW, OH, OW)
            grad_cols = (self.w_rows.swapaxes(-1, -2) @ grad_rows).reshape(
                (n, -1) + self.w_shape[2:] + (oh, ow))
            grad_pad = _col2im(self.xp, grad_cols, self.x_pad_shape, self.stride, self.dilation)
            grad_x = _unpad(grad_pad, self.padding)
        if len(self.inputs) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, grad_out.sum(axis=(0, 2, 3))

    def _check_shapes(self, x, w, b):
        if x.ndim != 4 or w.ndim != 4:
            raise ValueError(
                f"conv2d: expected input (N, C, H, W) and weight (O, C/groups, KH, KW), got "
                f"shapes {x.shape} and {w.shape}; add a batch axis with x.reshape(1, C, H, W)")
        if x.shape[1] != w.shape[1] * self.groups:
            raise ValueError(
                f"conv2d: input has {x.shape[1]} channels but weight {w.shape} with "
                f"groups={self.groups} expects {w.shape[1] * self.groups}")
        if w.shape[0] % self.groups:
            raise ValueError(f"conv2d: out channels ({w.shape[0]}) must be divisible by "
                             f"groups ({self.groups})")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias shape {b.shape} must be ({w.shape[0]},)")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    op = Conv2d(stride, padding, dilation, groups)
    return op(x, weight) if bias is None else op(x, weight, bias)


def _pool_args(name, kernel_size, stride, padding):
    """Checked (kernel, stride, padding) pairs of a pooling op; stride defaults to the kernel."""
    kernel = _pair(kernel_size, f"{name}: kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, f"{name}: stride", 1)
    padding = _pair(padding, f"{name}: padding", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel "
                         f"{kernel}, so that no window is all padding")
    return kernel, stride, padding


def _pool_out_hw(name, x, kernel, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected input (N, C, H, W), got shape {x.shape}")
    return (_out_size(x.shape[2], kernel[0], stride[0], padding[0], 1, name),
            _out_size(x.shape[3], kernel[1], stride[1], padding[1], 1, name))


class MaxPool2d(Function):
    """Max pooling over KH x KW windows.

    Forward:  y[n, c, p, q] = max over the window of x_pad (padding is -inf, never chosen)
              A running maximum over the kernel offsets; ``argmax`` records which offset
              k = i*KW + j won. Ties go to the FIRST maximum in window order (row by row, left
              to right), because a later offset replaces the running maximum only when it is
              strictly larger. The choice is deterministic and the same on every backend.
    Backward: grad_x[window pixel] += grad_out where that pixel was the window's argmax, else 0
              (the max is locally the identity on the winner and constant in the others)
    Shapes:   x (N, C, H, W) -> y (N, C, OH, OW); argmax (N, C, OH, OW) int
    Saves:    argmax and the padded input shape
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel, self.stride, self.padding = _pool_args(
            "max_pool2d", kernel_size, stride, padding)

    def forward(self, x):
        out_hw = _pool_out_hw("max_pool2d", x, self.kernel, self.stride, self.padding)
        x_pad = _pad(self.xp, x, self.padding, value=-math.inf)
        self.x_pad_shape = x_pad.shape
        y = self.xp.full(x.shape[:2] + out_hw, -math.inf, dtype=x.dtype)
        self.argmax = self.xp.zeros(y.shape, dtype=self.xp.int64)
        for i, j, window in _windows(self.kernel, self.stride, (1, 1), out_hw):
            # strict >: an equal value at a later offset does not take over (first max wins)
            better = x_pad[window] > y
            y = self.xp.where(better, x_pad[window], y)
            self.argmax = self.xp.where(better, i * self.kernel[1] + j, self.argmax)
        return y

    def backward(self, grad_out):
        grad_pad = self.xp.zeros(self.x_pad_shape, dtype=grad_out.dtype)
        zero = self.xp.zeros((), dtype=grad_out.dtype)
        out_hw = grad_out.shape[2:]
        for i, j, window in _windows(self.kernel, self.stride, (1, 1), out_hw):
            k = i * self.kernel[1] + j
            grad_pad[window] += self.xp.where(self.argmax == k, grad_out, zero)
        return _unpad(grad_pad, self.padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    return MaxPool2d(kernel_size, stride, padding)(x)


class AvgPool2d(Function):
    """Average pooling over KH x KW windows (zero padding counts in the average, as PyTorch's
    default count_include_pad=True).

    Forward:  y[n, c, p, q] = (1 / (KH*KW)) * sum over the window of x_pad
    Backward: grad_x[window pixel] += grad_out / (KH*KW), for every window holding the pixel
    Shapes:   x (N, C, H, W) -> y (N, C, OH, OW)
    Saves:    the padded input shape
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel, self.stride, self.padding = _pool_args(
            "avg_pool2d", kernel_size, stride, padding)

    def forward(self, x):
        oh, ow = _pool_out_hw("avg_pool2d", x, self.kernel, self.stride, self.padding)
        x_pad = _pad(self.xp, x, self.padding)
        self.x_pad_shape = x_pad.shape
        y = self.xp.zeros((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
        for _, _, window in _windows(self.kernel, self.stride, (1, 1), (oh, ow)):
            y += x_pad[window]
        return y / (self.kernel[0] * self.kernel[1])

    def backward(self, grad_out):
        grad_pad = self.xp.zeros(self.x_pad_shape, dtype=grad_out.dtype)
        share = grad_out / (self.kernel[0] * self.kernel[1])
        for _, _, window in _windows(self.kernel, self.stride, (1, 1), grad_out.shape[2:]):
            grad_pad[window] += share
        return _unpad(grad_pad, self.padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    return AvgPool2d(kernel_size, stride, padding)(x)
