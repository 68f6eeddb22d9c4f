"""Structured dropout: DropBlock2d (square blocks of a feature map) and DropConnectLinear
(the weights of a linear layer). Both reuse the one dropout op, MaskedScale; only the mask
differs (see layers/dropout.py)."""

import numpy as np

from layers.dropout import DropoutLayer
from layers.linear import Linear
from minigrad import random
from minigrad.backend import get_xp
from minigrad.ops.dropout import DEFAULT_MEMORY, MaskedScale, check_memory
from minigrad.ops.matmul import linear


class DropBlock2d(DropoutLayer):
    """Zero contiguous block_size x block_size squares of (N, C, H, W) feature maps.

    ``p`` is the target fraction of ZEROED elements. A dropped square is a block whose top-left
    corner is a "seed"; seeds are drawn independently per (sample, channel) with rate

        gamma = p / block_size**2 * (H*W) / ((H - block_size + 1) * (W - block_size + 1))

    (clipped to 1), only where a whole block fits. The block mask is the seed mask max-pooled
    with a block_size x block_size window. Blocks may overlap, so the real drop rate is a
    little below p (about p * (1 - gamma * block_size**2 / 2) for small p).

    Train:     inverted: y = m * x * numel(m) / sum(m)   (rescaled by the kept fraction)
               classic:  y = m * x
    Eval:      inverted: y = x;   classic: y = (1-p) * x
    Gradient:  grad_x = m * grad_out * (the same factor), with the forward's m
    Expectation: inverted keeps the mean activation of each batch: mean(m * numel/sum(m)) = 1.
               Classic relies on E[sum(m) / numel] ~ 1-p, which holds up to the overlap above.

    Args:
        p:          target probability of zeroing an element, in [0, 1].
        block_size: side of the square blocks (odd or even), at most min(H, W).
        scaling:    "inverted" (default) or "classic".
        memory:     "bytes" (default) or "bits". "seed" is not offered: the mask is not one
                    draw per element but a max-pool of the seeds, so it is passed to the op
                    as a given mask, which the op cannot redraw.
        generator:  a minigrad.random.Generator (default: the default generator).

    Reference: Ghiasi, Lin and Le, "DropBlock: A regularization method for convolutional
    networks", NeurIPS 2018. https://arxiv.org/abs/1810.12890
    """

    def __init__(self, p=0.1, block_size=7, scaling="inverted", memory=DEFAULT_MEMORY,
                 generator=None):
        check_memory(memory, ("bytes", "bits"))
        super().__init__(p, scaling, memory, generator)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        self.block_size = block_size

    def mask_shape(self, x_shape):
        if len(x_shape) != 4:
            raise ValueError(f"DropBlock2d expects input of shape (N, C, H, W) (4 axes), got "
                             f"shape {tuple(x_shape)}")
        height, width = x_shape[2:]
        if self.block_size > min(height, width):
            raise ValueError(f"DropBlock2d: block_size {self.block_size} is larger than the "
                             f"feature map ({height} x {width}); use block_size <= "
                             f"{min(height, width)}")
        return tuple(x_shape)

    def block_mask(self, xp, shape):
        """A bool keep-mask of ``shape`` (N, C, H, W): False on the dropped blocks."""
        n, c, height, width = shape
        bs = self.block_size
        rows, cols = height - bs + 1, width - bs + 1   # corners where a whole block fits
        gamma = min(1.0, self.p / bs ** 2 * (height * width) / (rows * cols))
        seeds = random.keep_mask(xp, (n, c, rows, cols), gamma, self.generator)  # P(True) = gamma
        dropped = xp.zeros(shape, dtype=bool)
        # max-pool by shifting: the seed at (i, j) covers rows i..i+bs-1 and cols j..j+bs-1
        for di in range(bs):
            for dj in range(bs):
                dropped[:, :, di:di + rows, dj:dj + cols] |= seeds
        return ~dropped

    def forward(self, x):
        shape = self.mask_shape(x.shape)
        if not self.training:
            return super().forward(x)
        keep = self.block_mask(get_xp(x.data), shape)
        scale = 1.0
        if self.scaling == "inverted":
            kept = float(keep.sum())   # one device-to-host sync per forward
            scale = keep.size / kept if kept > 0 else 0.0
        op = MaskedScale(self.p, True, self.scaling, memory=self.memory, scale=scale)
        return self._record(op, op(x, keep))

    def extra_repr(self):
        return f"p={self.p}, block_size={self.block_size}, scaling={self.scaling!r}"


class DropConnectLinear(Linear, DropoutLayer):
    """A Linear layer whose WEIGHTS are dropped: y = x @ (M * W)^T + b.

    Each weight is zeroed with probability p (the DROP probability); one mask M of W's shape
    (out, in) is drawn per forward pass and shared by the whole batch. The bias is not masked.

    Train:     inverted: y = x @ (M * W / (1-p))^T + b;   classic: y = x @ (M * W)^T + b
    Eval:      inverted: y = x @ W^T + b;   classic: y = x @ ((1-p) * W)^T + b
               (the mean-weight rule, not the paper's Gaussian moment matching)
    Gradient:  grad_W = M * (grad_out^T @ x) * s  with s = 1/(1-p) or 1, the same M;
               grad_x = grad_out @ (M * W) * s;   grad_b = sum of grad_out over the batch
    Expectation: E[M * W * s] equals the eval weight, so E[train y] = eval y for both.

    Args:
        in_features, out_features, bias, device, dtype: as Linear (same initialisation).
        p:          probability of zeroing a weight, in [0, 1].
        scaling:    "inverted" (default) or "classic".
        memory:     "bytes" (default), "bits" or "seed": how the weight mask is kept.
        generator:  a minigrad.random.Generator for the initial weights and the masks.

    Reference: Wan et al., "Regularization of Neural Networks using DropConnect", ICML 2013.
    https://proceedings.mlr.press/v28/wan13.html
    """

    def __init__(self, in_features, out_features, p=0.5, bias=True, scaling="inverted",
                 memory=DEFAULT_MEMORY, device="cpu", dtype=np.float32, generator=None):
        Linear.__init__(self, in_features, out_features, bias, device, dtype, generator)
        DropoutLayer.__init__(self, p, scaling, memory, generator)

    def forward(self, x):
        weight = self.weight
        self.last_mask_bytes = 0
        if self.training or self.scaling == "classic":
            op = MaskedScale(self.p, self.training, self.scaling, self.generator,
                             memory=self.memory)
            weight = self._record(op, op(weight))
        return linear(x, weight, self.bias)

    def extra_repr(self):
        return f"{Linear.extra_repr(self)}, {DropoutLayer.extra_repr(self)}"
