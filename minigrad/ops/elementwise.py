"""Elementwise arithmetic: add, sub, mul, div, neg, pow, exp, log, sqrt, abs, maximum, minimum,
clip, where, astype.

Binary ops broadcast their inputs; their backward undoes the broadcast with ``sum_to``.
Either input of a binary op may be a constant (a Python number or an array): constants get no
gradient (``needs_input_grad`` is False for them).
"""

import numbers

from minigrad.autograd import Function, constant_array, sum_to


def _shape(a):
    return getattr(a, "shape", ())


def _python_number(c):
    """A number constant as a Python int or float; anything else (None, arrays) unchanged.

    NumPy 2 keeps an array's dtype only for Python numbers: np.float64(2) as a constant
    would promote a float32 array to float64.
    """
    if isinstance(c, numbers.Integral):
        return int(c)
    return float(c) if isinstance(c, numbers.Real) else c


class Add(Function):
    """Elementwise sum, with broadcasting.

    Forward:  y = a + b
    Backward: grad_a = sum_to(grad_out, a.shape);  grad_b = sum_to(grad_out, b.shape)
    Shapes:   a, b broadcast together to y.shape; grad_out has y.shape
    Saves:    the two input shapes
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        return a + b

    def backward(self, grad_out):
        return sum_to(grad_out, self.a_shape), sum_to(grad_out, self.b_shape)


def add(a, b):
    return Add()(a, b)


class Sub(Function):
    """Elementwise difference, with broadcasting.

    Forward:  y = a - b
    Backward: grad_a = sum_to(grad_out, a.shape);  grad_b = -sum_to(grad_out, b.shape)
    Shapes:   a, b broadcast together to y.shape
    Saves:    the two input shapes
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        return a - b

    def backward(self, grad_out):
        grad_b = -sum_to(grad_out, self.b_shape) if self.needs_input_grad[1] else None
        return sum_to(grad_out, self.a_shape), grad_b


def sub(a, b):
    return Sub()(a, b)


class Mul(Function):
    """Elementwise product, with broadcasting.

    Forward:  y = a * b
    Backward: grad_a = sum_to(grad_out * b, a.shape);  grad_b = sum_to(grad_out * a, b.shape)
    Shapes:   a, b broadcast together to y.shape
    Saves:    a, b
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        grad_a = sum_to(grad_out * self.b, self.a.shape) if need_a else None
        grad_b = sum_to(grad_out * self.a, self.b.shape) if need_b else None
        return grad_a, grad_b


def mul(a, b):
    return Mul()(a, b)


class Div(Function):
    """Elementwise quotient, with broadcasting.

    Forward:  y = a / b
    Backward: grad_a = sum_to(grad_out / b, a.shape)
              grad_b = sum_to(-grad_out * a / b**2, b.shape) = sum_to(-grad_out * y / b, b.shape)
    Shapes:   a, b broadcast together to y.shape
    Saves:    a's shape, b, y
    """

    def forward(self, a, b):
        self.a_shape, self.b = _shape(a), b
        self.y = a / b
        return self.y

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        grad_a = sum_to(grad_out / self.b, self.a_shape) if need_a else None
        grad_b = sum_to(-grad_out * self.y / self.b, self.b.shape) if need_b else None
        return grad_a, grad_b


def div(a, b):
    return Div()(a, b)


class Neg(Function):
    """Negation.

    Forward:  y = -x
    Backward: grad_x = -grad_out
    Saves:    nothing
    """

    def forward(self, x):
        return -x

    def backward(self, grad_out):
        return -grad_out


def neg(x):
    return Neg()(x)


class Pow(Function):
    """Power with a constant exponent c (a Python number).

    Forward:  y = x ** c
    Backward: grad_x = grad_out * c * x ** (c - 1)
    Shapes:   x, y, grad_out: any shape, all equal
    Saves:    x
    For a tensor exponent write exp(b * log(a)): its gradient then follows from exp and log.
    """

    def __init__(self, exponent):
        if not isinstance(exponent, numbers.Real):
            raise TypeError(
                f"pow: the exponent must be a number, got {type(exponent).__name__}; "
                "for a tensor exponent b use (b * a.log()).exp()")
        self.c = _python_number(exponent)

    def forward(self, x):
        self.x = x
        return x ** self.c

    def backward(self, grad_out):
        return grad_out * self.c * self.x ** (self.c - 1)


def pow(x, exponent):
    return Pow(exponent)(x)


class Exp(Function):
    """Exponential.

    Forward:  y = exp(x)
    Backward: grad_x = grad_out * y
    Saves:    y
    """

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, grad_out):
        return grad_out * self.y


def exp(x):
    return Exp()(x)


class Log(Function):
    """Natural logarithm.

    Forward:  y = log(x)
    Backward: grad_x = grad_out / x
    Saves:    x
    """

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, grad_out):
        return grad_out / self.x


def log(x):
    return Log()(x)


class Sqrt(Function):
    """Square root.

    Forward:  y = sqrt(x)
    Backward: grad_x = grad_out / (2 * y)
    Saves:    y
    """

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, grad_out):
        return grad_out / (2 * self.y)


def sqrt(x):
    return Sqrt()(x)


class Abs(Function):
    """Absolute value.

    Forward:  y = |x|
    Backward: grad_x = grad_out * sign(x)    (0 at x = 0, the subgradient PyTorch also picks)
    Saves:    x
    """

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, grad_out):
        return grad_out * self.xp.sign(self.x)


def abs(x):
    return Abs()(x)


class Maximum(Function):
    """Elementwise maximum of two inputs, with broadcasting.

    Forward:  y = max(a, b)
    Backward: grad_a = grad_out * w,  grad_b = grad_out * (1 - w),  each summed to its shape,
              with w = 1 where a > b, 0 where a < b, and 1/2 at ties (split evenly, so the
              result does not depend on argument order).
    Saves:    the weight w and the two shapes
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        y = self.xp.maximum(a, b)
        self.w = _tie_split_weight(self.xp, a, b, y)
        return y

    def backward(self, grad_out):
        grad_a = grad_out * self.w
        return sum_to(grad_a, self.a_shape), sum_to(grad_out - grad_a, self.b_shape)


def maximum(a, b):
    return Maximum()(a, b)


class Minimum(Function):
    """Elementwise minimum of two inputs, with broadcasting.

    Forward:  y = min(a, b)
    Backward: as Maximum, with w = 1 where a < b, 0 where a > b, 1/2 at ties.
    Saves:    the weight w and the two shapes
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        y = self.xp.minimum(a, b)
        self.w = _tie_split_weight(self.xp, a, b, y)
        return y

    def backward(self, grad_out):
        grad_a = grad_out * self.w
        return sum_to(grad_a, self.a_shape), sum_to(grad_out - grad_a, self.b_shape)


def minimum(a, b):
    return Minimum()(a, b)


def _tie_split_weight(xp, a, b, y):
    """1 where y came from a alone, 1/2 where a == b, 0 where it came from b."""
    from_a = (a == y).astype(y.dtype)
    return from_a - 0.5 * from_a * (b == y)


class Clip(Function):
    """Clamp to [low, high] (either bound may be None).

    Forward:  y = min(max(x, low), high)
    Backward: grad_x = grad_out where low <= x <= high, else 0 (bounds inclusive, as PyTorch)
    Saves:    the pass-through mask
    """

    def __init__(self, low=None, high=None):
        if low is not None and high is not None and low > high:
            raise ValueError(f"clip: low ({low}) must not exceed high ({high})")
        self.low, self.high = _python_number(low), _python_number(high)

    def forward(self, x):
        inside = self.xp.ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x <= self.high
        self.inside = inside
        return self.xp.clip(x, self.low, self.high)

    def backward(self, grad_out):
        return grad_out * self.inside


def clip(x, low=None, high=None):
    return Clip(low, high)(x)


class Where(Function):
    """Pick from a where cond is True, else from b (cond is a constant boolean array).

    Forward:  y = where(cond, a, b)
    Backward: grad_a = sum_to(where(cond, grad_out, 0), a.shape)
              grad_b = sum_to(where(cond, 0, grad_out), b.shape)
    Saves:    cond and the two shapes
    """

    def forward(self, cond, a, b):
        self.cond, self.a_shape, self.b_shape = cond, _shape(a), _shape(b)
        return self.xp.where(cond, a, b)

    def backward(self, grad_out):
        zero = self.xp.zeros((), dtype=grad_out.dtype)
        grad_a = sum_to(self.xp.where(self.cond, grad_out, zero), self.a_shape)
        grad_b = sum_to(self.xp.where(self.cond, zero, grad_out), self.b_shape)
        return None, grad_a, grad_b


def where(cond, a, b):
    cond = constant_array(cond)
    if cond.dtype != bool:
        raise TypeError(f"where: cond must be a boolean array, got dtype {cond.dtype}")
    return Where()(cond, a, b)


class AsType(Function):
    """Cast to another dtype (e.g. float32 <-> float16 for mixed precision).

    Forward:  y = x.astype(dtype)
    Backward: grad_x = grad_out.astype(x.dtype)
    Saves:    x's dtype
    """

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, grad_out):
        return grad_out.astype(self.x_dtype)


def astype(x, dtype):
    return AsType(dtype)(x)
