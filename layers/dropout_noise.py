"""Dropout with other noise: GaussianDropout (multiplicative Gaussian noise) and AlphaDropout
(for SELU networks). Their ops sit here, next to the layers that use them."""

import math

from layers.dropout import DropoutLayer
from minigrad import random
from minigrad.autograd import Function
from minigrad.ops.dropout import (DEFAULT_MEMORY, SavedMask, check_float, check_generator,
                                  check_memory, check_p)

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
ALPHA_PRIME = -SELU_SCALE * SELU_ALPHA   # SELU's limit at -inf, where dropped units are set


class MultiplicativeNoise(Function):
    """Gaussian dropout's op: multiply by noise of mean 1 and variance p/(1-p).

    ``p`` is the drop probability of the Bernoulli dropout whose mean and variance it matches.

    Forward:  y = x * e,   e = 1 + sigma * z,   z ~ N(0, 1),   sigma**2 = p / (1-p)
    Backward: grad_x = grad_out * e   (the forward's e)
    Shapes:   x, e, y, grad_out: any shape, all equal
    Saves:    memory "bytes": e itself (x.itemsize bytes per element);
              memory "seed": only the StreamKey; e is redrawn in backward (0 B per element)
    """

    def __init__(self, p=0.5, generator=None, memory=DEFAULT_MEMORY):
        self.p = check_p(p, allow_one=False)
        self.sigma = math.sqrt(self.p / (1.0 - self.p))
        self.generator = check_generator(generator)
        self.memory = check_memory(memory, ("bytes", "seed"))
        self.noise = self.key = None
        self.mask_bytes = 0

    def draw(self, shape, dtype):
        """The noise e for the stream ``self.key``: the same key gives the same e."""
        e = random.normal(self.xp, shape, self.key, dtype=dtype).astype(dtype, copy=False)
        e *= self.sigma
        e += 1.0
        return e

    def forward(self, x):
        check_float(x)
        self.key = (self.generator or random.default_generator()).next_key()
        noise = self.draw(x.shape, x.dtype)
        if self.memory == "bytes":
            self.noise = noise
            self.mask_bytes = noise.nbytes
        return x * noise

    def backward(self, grad_out):
        noise = self.noise
        if noise is None:
            noise = self.draw(grad_out.shape, grad_out.dtype)
        return grad_out * noise


class GaussianDropout(DropoutLayer):
    """Multiply by Gaussian noise N(1, p/(1-p)) instead of a 0/1 mask.

    ``p`` is the probability of zeroing of the Bernoulli dropout it imitates: inverted dropout
    m/(1-p) has mean 1 and variance p/(1-p), and so has this noise.

    Train:     y = x * e,   e ~ N(1, p/(1-p)) per element
    Eval:      y = x
    Gradient:  grad_x = grad_out * e, the forward's e
    Expectation: E[y] = x, Var[y] = x**2 * p/(1-p) (the same as inverted dropout).

    Scaling: there is no classic variant: the noise already has mean 1, so the eval output is
    the expectation without any rescaling (``scaling`` is fixed to "inverted").

    Args:
        p:          in [0, 1); p == 0 is the identity, p == 1 (infinite variance) is rejected.
        memory:     "bytes" (default; keeps e, x.itemsize bytes per element) or "seed" (keeps
                    only the key, e is redrawn in backward). "bits" does not apply: e is not
                    binary.
        generator:  a minigrad.random.Generator (default: the default generator).

    Reference: Srivastava et al., JMLR 2014, section 10 (multiplicative Gaussian noise).
    https://jmlr.org/papers/v15/srivastava14a.html
    """

    def __init__(self, p=0.5, memory=DEFAULT_MEMORY, generator=None):
        check_memory(memory, ("bytes", "seed"))
        super().__init__(check_p(p, allow_one=False), "inverted", memory, generator)

    def forward(self, x):
        if not self.training:
            self.last_mask_bytes = 0
            return x
        op = MultiplicativeNoise(self.p, self.generator, self.memory)
        return self._record(op, op(x))


def alpha_dropout_affine(p):
    """The affine correction (a, b) of AlphaDropout for drop probability ``p`` < 1.

    a = ((1-p) * (1 + p * alpha'**2)) ** -1/2 and b = -a * alpha' * p, so that a unit of mean
    0 and variance 1 keeps mean 0 and variance 1 after dropping to alpha'.
    """
    a = ((1.0 - p) * (1.0 + p * ALPHA_PRIME ** 2)) ** -0.5
    return a, -a * ALPHA_PRIME * p


class AlphaDrop(Function):
    """AlphaDropout's op: dropped units go to alpha', then an affine map restores the moments.

    ``p`` is the probability of dropping a unit; keep = 1 - p; m ~ Bernoulli(keep), True = kept.

    Forward:  y = a * where(m, x, alpha') + b   = where(m, a*x + b, a*alpha' + b)
              (a, b) from ``alpha_dropout_affine(p)``; alpha' = -SELU_SCALE * SELU_ALPHA
    Backward: grad_x = where(m, a * grad_out, 0)   (the forward's m)
    Shapes:   x, y, m, grad_out: any shape, all equal
    Saves:    the mask as a SavedMask ("bytes", "bits" or "seed" memory mode)
    """

    def __init__(self, p=0.5, generator=None, memory=DEFAULT_MEMORY):
        self.p = check_p(p, allow_one=False)
        self.a, self.b = alpha_dropout_affine(self.p)
        self.generator = check_generator(generator)
        self.memory = check_memory(memory)
        self.saved = None
        self.mask_bytes = 0

    def forward(self, x):
        check_float(x)
        key = (self.generator or random.default_generator()).next_key()
        keep = 1.0 - self.p
        mask = random.keep_mask(self.xp, x.shape, keep, key)
        self.saved = SavedMask(self.xp, x.shape, self.memory, mask, key, keep)
        self.mask_bytes = self.saved.nbytes
        return self.xp.where(mask, self.a * x + self.b, self.a * ALPHA_PRIME + self.b)

    def backward(self, grad_out):
        return self.xp.where(self.saved.get(), self.a * grad_out, 0.0)


class AlphaDropout(DropoutLayer):
    """Dropout for self-normalising (SELU) networks: keeps mean 0 and variance 1.

    Setting dropped units to 0 would shift the mean and variance that SELU networks keep at
    (0, 1). AlphaDropout sets them to alpha' = -SELU_SCALE * SELU_ALPHA (about -1.758, SELU's
    value at -inf) and then applies y -> a*y + b, which restores both moments.

    Train:     y = a * (m * x + (1-m) * alpha') + b,  m ~ Bernoulli(1-p),
               a = ((1-p)(1 + p alpha'**2))**-1/2,  b = -a alpha' p
    Eval:      y = x
    Gradient:  grad_x = a * m * grad_out, the forward's m
    Expectation: for x with mean 0 and variance 1, y has mean 0 and variance 1.

    Scaling: no classic variant: a and b are the correction, and eval is the identity
    (``scaling`` is fixed to "inverted").

    Args:
        p:          probability of dropping a unit, in [0, 1); p == 1 is rejected (a = 1/0).
        memory:     "bytes" (default), "bits" or "seed": how the mask is kept for backward.
        generator:  a minigrad.random.Generator (default: the default generator).

    Reference: Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017.
    https://arxiv.org/abs/1706.02515
    """

    def __init__(self, p=0.5, memory=DEFAULT_MEMORY, generator=None):
        super().__init__(check_p(p, allow_one=False), "inverted", memory, generator)

    def forward(self, x):
        if not self.training:
            self.last_mask_bytes = 0
            return x
        op = AlphaDrop(self.p, self.generator, self.memory)
        return self._record(op, op(x))
