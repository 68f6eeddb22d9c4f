"""The dropout family: one op, many mask shapes.

One op. Every layer here calls the same op, ``minigrad.ops.dropout.MaskedScale``:
``y = where(m, x * s, 0)`` in training, with a 0/1 mask m that is True with probability
keep = 1 - p. ``p`` is always the probability of ZEROING, as in PyTorch. The variants
differ only in the SHAPE of m, which broadcasts against x:

    Dropout        x.shape             single units
    Dropout1d/2d/3d (N, C, 1, ...)     whole channels of a feature map
    TokenDropout   (..., 1)            whole feature vectors (tokens)
    LockedDropout  (N, 1, D)           one mask per sequence, shared by all time steps
    DropPath       (N, 1, ..., 1)      whole samples (a residual branch per sample)
    DropBlock2d    (N, C, H, W)        square blocks (layers/dropout_structured.py)
    DropConnectLinear  (out, in)       weights instead of activations (same file)

Backward is the same for all: grad_x = where(m, grad_out * s, 0), with the forward's m.
GaussianDropout and AlphaDropout (layers/dropout_noise.py) change the noise, not the shape.

Classic vs inverted. Both keep E[train output] = eval output. Classic dropout (the 2012
paper) trains with y = m * x and multiplies by keep at evaluation: y = (1 - p) * x.
Inverted dropout (PyTorch, TensorFlow) moves the correction into training,
y = m * x / (1 - p), so evaluation is the identity and costs nothing. Choose with
``scaling="inverted"`` (default) or ``"classic"``; the two differ only by the constant
1 - p, which the next layer's weights can absorb, but a model must be trained and
evaluated with the same one.

Where the random bits come from. ``minigrad.random`` hashes (seed, draw counter, element
index) with a counter-based generator: element i of a mask depends on nothing else. So the
same seed gives the same mask on NumPy and on CuPy, for any thread count, and a mask can be
redrawn later from its 16-byte key. Each layer draws from its ``generator=`` (or the default
one, reset by ``minigrad.random.manual_seed``); backward never draws.

What the mask costs. Backward needs the forward's mask. ``memory="bytes"`` keeps it as a bool
array: 1 byte per element, a quarter of a float32 activation. ``"bits"`` packs it 8 to a byte
(1 bit per element). ``"seed"`` keeps only the key and redraws the mask in backward: no memory
per element, one more hash pass. ``mask_bytes(model)`` tells how many bytes a model's dropout
masks hold after a forward pass. "bytes" is the default because it is the fastest
forward + backward (benchmarks/bench_dropout.py).
"""

from layers.module import Module
from minigrad.ops.dropout import (DEFAULT_MEMORY, MaskedScale, check_generator, check_memory,
                                  check_p, check_scaling)


class DropoutLayer(Module):
    """Base of every dropout-family layer: p, scaling, memory mode, generator.

    A subclass says which mask shape it draws (``mask_shape``); ``forward`` does the rest.
    After each forward, ``last_mask_bytes`` holds the bytes its mask keeps for backward
    (0 in evaluation, or when no graph is recorded).
    """

    def __init__(self, p=0.5, scaling="inverted", memory=DEFAULT_MEMORY, generator=None):
        self.p = check_p(p)
        self.scaling = check_scaling(scaling)
        self.memory = check_memory(memory)
        self.generator = check_generator(generator)
        self.last_mask_bytes = 0

    def mask_shape(self, x_shape):
        """The shape of the mask for an input of ``x_shape`` (it broadcasts against it)."""
        return x_shape

    def forward(self, x):
        if not self.training and self.scaling == "inverted":
            self.last_mask_bytes = 0
            return x
        op = MaskedScale(self.p, self.training, self.scaling, self.generator,
                         self.mask_shape(x.shape), self.memory)
        return self._record(op, op(x))

    def _record(self, op, y):
        """Note how many bytes of mask the graph holds for ``y``'s backward."""
        self.last_mask_bytes = op.mask_bytes if y.creator is op else 0
        return y

    def extra_repr(self):
        return f"p={self.p}, scaling={self.scaling!r}, memory={self.memory!r}"


class Dropout(DropoutLayer):
    """Zero single elements with probability p (p is the DROP probability).

    Train:     y = m * x / (1-p) (inverted) or y = m * x (classic), m ~ Bernoulli(1-p) per element
    Eval:      y = x (inverted) or y = (1-p) * x (classic)
    Gradient:  grad_x = m * grad_out / (1-p) (inverted) or m * grad_out (classic), same m
    Expectation: E[train y] = eval y for both scalings (for inverted, E[y] = x).

    p == 0 is the identity; p == 1 gives zeros (inverted scale taken as 0, never 1/0).

    Args:
        p:          probability of zeroing an element, in [0, 1].
        scaling:    "inverted" (default) or "classic".
        memory:     "bytes" (default, fastest), "bits" or "seed": how the mask is kept for
                    backward (see the module docstring).
        generator:  a minigrad.random.Generator (default: the default generator).

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014. https://jmlr.org/papers/v15/srivastava14a.html
    """


class _ChannelDropout(DropoutLayer):
    """Zero whole channels: the mask is (N, C, 1, ...) for an (N, C, *spatial) input."""

    spatial_axes = ()

    def mask_shape(self, x_shape):
        rank = 2 + len(self.spatial_axes)
        if len(x_shape) != rank:
            raise ValueError(f"{type(self).__name__} expects input of shape "
                             f"(N, C, {', '.join(self.spatial_axes)}) ({rank} axes), "
                             f"got shape {tuple(x_shape)}")
        return tuple(x_shape[:2]) + (1,) * len(self.spatial_axes)


class Dropout1d(_ChannelDropout):
    """Zero whole channels of (N, C, L) inputs: mask (N, C, 1), shared along L.

    Train / Eval / Gradient / Expectation: as Dropout, with m of shape (N, C, 1) broadcast
    along L, so a channel is kept or zeroed as a whole; E[train y] = eval y.
    Neighbouring positions of a feature map are correlated, so dropping single positions
    removes little information; dropping the whole channel does.

    Args: as Dropout.

    Reference: Tompson et al., "Efficient Object Localization Using Convolutional Networks",
    CVPR 2015 (spatial dropout). https://arxiv.org/abs/1411.4280
    """

    spatial_axes = ("L",)


class Dropout2d(_ChannelDropout):
    """Zero whole channels of (N, C, H, W) feature maps: mask (N, C, 1, 1).

    Train / Eval / Gradient / Expectation: as Dropout, with m of shape (N, C, 1, 1).

    Args: as Dropout.

    Reference: Tompson et al., CVPR 2015. https://arxiv.org/abs/1411.4280
    """

    spatial_axes = ("H", "W")


class Dropout3d(_ChannelDropout):
    """Zero whole channels of (N, C, D, H, W) volumes: mask (N, C, 1, 1, 1).

    Train / Eval / Gradient / Expectation: as Dropout, with m of shape (N, C, 1, 1, 1).

    Args: as Dropout.

    Reference: Tompson et al., CVPR 2015. https://arxiv.org/abs/1411.4280
    """

    spatial_axes = ("D", "H", "W")


class TokenDropout(DropoutLayer):
    """Zero whole feature vectors: the mask covers every axis but the last, shape (..., 1).

    For a (N, T, D) sequence each of the N*T tokens is kept or zeroed as a whole vector.
    Train / Eval / Gradient / Expectation: as Dropout, with m of shape x.shape[:-1] + (1,).

    Args: as Dropout.

    Reference: the token-level dropout of some RoBERTa-style implementations; cf. word
    dropout in Gal & Ghahramani, NeurIPS 2016. https://arxiv.org/abs/1512.05287
    """

    def mask_shape(self, x_shape):
        if len(x_shape) < 1:
            raise ValueError("TokenDropout expects input with a feature axis (..., D), got a "
                             "0-d input")
        return tuple(x_shape[:-1]) + (1,)


class LockedDropout(DropoutLayer):
    """Variational dropout for sequences: one mask per sequence, shared by all time steps.

    Axis convention (batch first): x is (N, T, D) = (batch, time, features); the mask is
    (N, 1, D), so feature d of sequence n is dropped at every step or at none.
    Train / Eval / Gradient / Expectation: as Dropout, with m of shape (N, 1, D).

    Args: as Dropout.

    Reference: Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
    Neural Networks", NeurIPS 2016 (https://arxiv.org/abs/1512.05287); Merity et al., AWD-LSTM,
    2017 (https://arxiv.org/abs/1708.02182).
    """

    def mask_shape(self, x_shape):
        if len(x_shape) != 3:
            raise ValueError(f"LockedDropout expects input of shape (N, T, D) = (batch, time, "
                             f"features), got shape {tuple(x_shape)}")
        return (x_shape[0], 1, x_shape[2])


class DropPath(DropoutLayer):
    """Stochastic depth: zero whole samples, mask (N, 1, ..., 1), for residual branches.

    Used as ``x + drop_path(block(x))``: a dropped sample skips the block and keeps only the
    identity path. Train / Eval / Gradient / Expectation: as Dropout, with m of shape
    (N, 1, ..., 1); with inverted scaling the kept branches are scaled by 1/(1-p).
    Rates usually grow linearly with depth: see ``drop_path_rates``.

    Args: as Dropout.

    Reference: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016.
    https://arxiv.org/abs/1603.09382
    """

    def mask_shape(self, x_shape):
        if len(x_shape) < 1:
            raise ValueError("DropPath expects input with a batch axis (N, ...), got a 0-d input")
        return (x_shape[0],) + (1,) * (len(x_shape) - 1)


def drop_path_rates(depth, max_rate):
    """DropPath rates for ``depth`` blocks, growing linearly from 0 to ``max_rate``.

    Block i (0-based) gets max_rate * i / (depth - 1): the first block is never dropped and
    the last gets ``max_rate`` (typically 0.1 to 0.3). A single block gets rate 0.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int (the number of blocks), got {depth!r}")
    max_rate = check_p(max_rate, "max_rate")
    if depth == 1:
        return [0.0]
    return [max_rate * i / (depth - 1) for i in range(depth)]


def mask_bytes(model):
    """Bytes held by the dropout masks of ``model`` after its last forward pass.

    The sum of ``last_mask_bytes`` over every dropout-family layer in the model: about one
    byte per masked element in "bytes" mode, one bit in "bits" mode, 0 in "seed" mode, and 0
    for layers in evaluation mode.
    """
    return sum(m.last_mask_bytes for m in model.modules() if isinstance(m, DropoutLayer))
