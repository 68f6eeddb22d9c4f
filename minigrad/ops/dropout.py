"""Dropout as one op: multiply by a random 0/1 mask and a scale, for the whole dropout family.

``p`` is always the probability of ZEROING an element, as in PyTorch; ``keep = 1 - p``.
Every variant (elementwise, channel, token, sample, block, weight) is this one op with a
mask of a different shape that broadcasts against the input; the layers in
``layers/dropout.py`` only choose that shape. The mask bits come from the counter-based
generator in ``minigrad.random``, so a mask is a pure function of (seed, position).
"""

import math
import numbers

import numpy as np

from minigrad import random
from minigrad.autograd import Function, constant_array

SCALINGS = ("inverted", "classic")
MEMORY_MODES = ("bytes", "bits", "seed")
DEFAULT_MEMORY = "bytes"   # fastest forward + backward in benchmarks/bench_dropout.py
_UINT_OF_SIZE = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def check_p(p, name="p", allow_one=True):
    """Return the drop probability ``p`` as a float after checking that it lies in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1] (the probability of zeroing an "
                        f"element), got {type(p).__name__} {p!r}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} is the probability of zeroing an element and must lie in "
                         f"[0, 1], got {p}; e.g. {name}=0.1 drops 10% of the elements")
    if p == 1.0 and not allow_one:
        raise ValueError(f"{name}=1 is not allowed here: the noise variance p/(1-p) or the "
                         f"affine correction divides by 1-p = 0; use {name} < 1")
    return p


def check_scaling(scaling):
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be 'inverted' (scale kept elements by 1/(1-p) in "
                         f"training, identity in eval) or 'classic' (no scale in training, "
                         f"multiply by 1-p in eval), got {scaling!r}")
    return scaling


def check_memory(memory, allowed=MEMORY_MODES):
    if memory not in allowed:
        raise ValueError(f"memory must be one of {', '.join(repr(m) for m in allowed)} "
                         f"(how the mask is kept for backward), got {memory!r}")
    return memory


def check_generator(generator):
    if generator is not None and not isinstance(generator, random.Generator):
        raise TypeError(f"generator must be a minigrad.random.Generator or None (the default "
                        f"generator), got {type(generator).__name__}")
    return generator


def check_mask_shape(mask_shape, x_shape, what="mask"):
    """Check that ``mask_shape`` broadcasts against x without changing x's shape."""
    mask_shape = tuple(mask_shape)
    fits = len(mask_shape) <= len(x_shape) and all(
        m in (1, n) for m, n in zip(mask_shape[::-1], x_shape[::-1]))
    if not fits:
        raise ValueError(f"{what} of shape {mask_shape} does not broadcast against the input "
                         f"of shape {x_shape}: each of its axes must be 1 or the input's length "
                         f"(aligned from the right)")
    return mask_shape


def check_float(x):
    if x.dtype.kind != "f":
        raise TypeError(f"dropout needs a floating-point input, got dtype {x.dtype}; "
                        f"convert it first, e.g. x.astype(np.float32)")


def train_scale(p, scaling):
    """The factor on kept elements in training: 1/(1-p) (inverted) or 1 (classic).

    At p == 1 nothing is kept and the inverted scale is taken as 0, not 1/0.
    """
    if scaling == "classic":
        return 1.0
    return 0.0 if p == 1.0 else 1.0 / (1.0 - p)


def eval_scale(p, scaling):
    """The factor in evaluation: 1 (inverted) or 1-p (classic)."""
    return 1.0 - p if scaling == "classic" else 1.0


def apply_mask(xp, values, mask, scale):
    """Return where(mask, values * scale, 0) as a new array; ``mask`` broadcasts to values.

    Written as a multiplication of the bit pattern of values * scale by 0 or 1: that gives an
    exact +0.0 where dropped even if values holds inf or nan (a float multiply by 0 would give
    nan), and on NumPy it is about ten times faster than ``where`` with a random mask.
    """
    y = values * scale
    bits = y.view(_UINT_OF_SIZE[y.dtype.itemsize])
    xp.multiply(bits, mask, out=bits)
    return y


class SavedMask:
    """A 0/1 mask kept for backward in one of three memory modes.

    "bytes": the bool array (1 byte per mask element).
    "bits":  the mask packed 8 to a byte with ``xp.packbits`` (1 bit per element).
    "seed":  only the StreamKey it was drawn with; ``get`` redraws it with ``keep_mask``
             (0 bytes per element). The key replays the same stream, so it is the same mask.
    """

    def __init__(self, xp, shape, memory, mask=None, key=None, keep=None):
        self.xp, self.shape, self.memory = xp, tuple(shape), memory
        self.key, self.keep = key, keep
        self.mask = self.packed = None
        if memory == "bytes":
            self.mask = mask
        elif memory == "bits":
            self.packed = xp.packbits(mask)
        elif key is None:
            raise ValueError("memory='seed' redraws the mask from its key, but this mask was "
                             "given, not drawn; use memory='bytes' or 'bits'")

    @property
    def nbytes(self):
        """Bytes held by the mask (0 in "seed" mode: a key is a few Python ints)."""
        if self.memory == "bytes":
            return self.mask.nbytes
        return self.packed.nbytes if self.memory == "bits" else 0

    def get(self):
        """The mask as a bool array of its original shape, never a new draw."""
        if self.memory == "bytes":
            return self.mask
        if self.memory == "bits":
            size = math.prod(self.shape)
            return self.xp.unpackbits(self.packed)[:size].reshape(self.shape).view(bool)
        return random.keep_mask(self.xp, self.shape, self.keep, self.key)


class MaskedScale(Function):
    """The dropout op: y = where(m, x * s, 0), with the 0/1 mask m drawn here or given.

    ``p`` is the probability of ZEROING an element; keep = 1 - p; m is True where kept, with
    P(m = 1) = keep, and its shape broadcasts against x (x.shape for elementwise dropout,
    (N, C, 1, 1) for channels, (N, 1, ..., 1) for samples: the variants differ only there).

    Forward:  training:   y = where(m, x * s, 0)   s = 1/keep (inverted; 0 at p == 1) or 1
                                                   (classic); ``scale=`` may override s
              evaluation: y = x * e                e = 1 (inverted) or keep (classic)
    Backward: training:   grad_x = where(m, grad_out * s, 0)    (the forward's m)
              evaluation: grad_x = grad_out * e
    Shapes:   x, y, grad_out: any shape, all equal; m: mask_shape (default x.shape) or the
              shape of the given mask, broadcastable to x.shape
    Saves:    the mask as a SavedMask in the chosen memory mode ("bytes", "bits" or "seed");
              nothing in evaluation. ``mask_bytes`` records its size.
    """

    def __init__(self, p=0.5, training=True, scaling="inverted", generator=None,
                 mask_shape=None, memory=DEFAULT_MEMORY, scale=None):
        self.p = check_p(p)
        self.keep = 1.0 - self.p
        self.training = bool(training)
        self.scaling = check_scaling(scaling)
        self.generator = check_generator(generator)
        self.mask_shape = None if mask_shape is None else tuple(mask_shape)
        self.memory = check_memory(memory)
        if not self.training:
            scale = eval_scale(self.p, scaling)
        self.scale = train_scale(self.p, scaling) if scale is None else float(scale)
        self.saved = None
        self.mask_bytes = 0

    def forward(self, x, mask=None):
        check_float(x)
        if not self.training:
            return x * self.scale
        if mask is not None:
            return self._forward_given(x, mask)
        key = (self.generator or random.default_generator()).next_key()
        shape = x.shape if self.mask_shape is None else check_mask_shape(
            self.mask_shape, x.shape, "mask_shape")
        mask = None
        if shape != x.shape:
            mask = random.keep_mask(self.xp, shape, self.keep, key)
            y = apply_mask(self.xp, x, mask, self.scale)
        elif self.memory == "seed":
            # fused draw-and-apply, no mask array; backward redraws it from the key
            y = random.masked_scale(self.xp, x, self.keep, self.scale, key)
        else:
            mask = self.xp.empty(shape, dtype=bool)
            y = random.masked_scale(self.xp, x, self.keep, self.scale, key, mask_out=mask)
        self.saved = SavedMask(self.xp, shape, self.memory, mask, key, self.keep)
        self.mask_bytes = self.saved.nbytes
        return y

    def _forward_given(self, x, mask):
        if mask.dtype != bool:
            raise TypeError(f"mask must be a bool array (True = kept), got dtype {mask.dtype}; "
                            f"pass e.g. mask != 0")
        check_mask_shape(mask.shape, x.shape)
        self.saved = SavedMask(self.xp, mask.shape, self.memory, mask)
        self.mask_bytes = self.saved.nbytes
        return apply_mask(self.xp, x, mask, self.scale)

    def backward(self, grad_out):
        saved = self.saved
        if not self.training:
            grad_x = grad_out * self.scale
        elif saved.memory == "seed" and saved.shape == grad_out.shape:
            # one fused pass: the saved key redraws the forward's mask
            grad_x = random.masked_scale(self.xp, grad_out, self.keep, self.scale, saved.key)
        else:
            grad_x = apply_mask(self.xp, grad_out, saved.get(), self.scale)
        return (grad_x, None) if len(self.inputs) == 2 else grad_x   # a given mask: no grad

    def get_mask(self):
        """The mask of the last training forward (bool, True = kept), or None."""
        return None if self.saved is None else self.saved.get()


def dropout(x, p=0.5, training=True, scaling="inverted", generator=None, mask=None,
            return_mask=False, mask_shape=None, memory=DEFAULT_MEMORY):
    """Zero each element of ``x`` with probability ``p`` (p is the DROP probability).

    Args:
        x:           a floating-point Tensor (or backend array).
        p:           probability of zeroing, in [0, 1]. p == 0 is the identity; p == 1 gives
                     all zeros (the inverted scale is then taken as 0, not 1/0).
        training:    False gives the evaluation formula: x (inverted) or (1-p) * x (classic).
                     Inverted evaluation returns ``x`` itself and records no op.
        scaling:     "inverted" (default): train y = m*x/(1-p), eval y = x.
                     "classic": train y = m*x, eval y = (1-p)*x.
        generator:   a minigrad.random.Generator; None uses the default generator.
        mask:        a bool array or Tensor (True = kept) that broadcasts against x; used
                     instead of drawing one (tests, study, recomputation).
        return_mask: also return the mask: ``(y, mask)``; the mask is None in evaluation.
        mask_shape:  the shape of the drawn mask, broadcastable to x.shape (default x.shape):
                     e.g. (N, C, 1, 1) drops whole channels of an (N, C, H, W) input.
        memory:      how backward gets the mask: "bytes" (bool, 1 B/element, the default and
                     the fastest), "bits" (packed, 1 bit/element) or "seed" (only the key,
                     redrawn in backward, 0 B/element).
    """
    if not training and check_scaling(scaling) == "inverted":
        check_p(p)
        check_memory(memory)
        check_float(x)
        return (x, None) if return_mask else x
    op = MaskedScale(p, training, scaling, generator, mask_shape, memory)
    y = op(x) if mask is None else op(x, constant_array(mask))
    return (y, op.get_mask()) if return_mask else y
