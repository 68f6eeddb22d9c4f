"""Max-norm: keep each unit's incoming weight vector inside a ball of radius c."""

from minigrad.backend import device_of, get_xp
from minigrad.optim.optimizer import check_number
from minigrad.tensor import Tensor


class MaxNorm:
    """Project every hidden unit's incoming weight vector onto the ball ||w_j|| <= max_norm.

    Call ``apply()`` right after each ``optimizer.step()``::

        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.95)
        max_norm = MaxNorm(model, max_norm=3.0)
        ...
        optimizer.step()
        max_norm.apply()

    For a weight W of shape (out, in) (``Linear``'s layout), row j holds the incoming weights
    of unit j, and the update is::

        W[j] = W[j] * c / max(||W[j]||_2, c)

    Rows with norm above c end with norm c (up to rounding); rows at or below c are left
    exactly as they are (the factor is c / c = 1). A weight with more axes, (out, ...), is
    treated per output unit the same way, with the norm over all its other axes. Parameters
    with fewer than two axes (biases) are never constrained.

    The constraint is an object of its own rather than an optimizer option so that it works
    with any optimizer, and so that the optimizers keep PyTorch's update formulas unchanged:
    it is a projection applied after the step, not part of the step.

    Args:
        params_or_modules: a Module, a Parameter, or an iterable of either; all parameters
                           with two or more axes among them are constrained.
        max_norm:          the radius c (> 0); the paper's typical values are 3 to 4.

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014, sec. 5.1, https://jmlr.org/papers/v15/srivastava14a.html
    """

    def __init__(self, params_or_modules, max_norm=3.0):
        self.max_norm = check_number("MaxNorm", "max_norm", max_norm, low_open=True)
        self.params = [p for p in _gather(params_or_modules) if p.data.ndim >= 2]
        if not self.params:
            raise ValueError("MaxNorm: found no weights with two or more axes to constrain; "
                             "pass the model (or its Linear layers), not only biases")
        self._squares = {}   # scratch for the squared weights, per (shape, dtype, device)

    def apply(self):
        """Rescale, in place, every row whose L2 norm exceeds ``max_norm``."""
        c = self.max_norm
        for p in self.params:
            xp = get_xp(p.data)
            key = (p.data.shape, p.data.dtype.str, device_of(p.data))
            squares = self._squares.get(key)
            if squares is None:
                squares = self._squares[key] = xp.empty_like(p.data)
            xp.multiply(p.data, p.data, out=squares)
            axes = tuple(range(1, p.data.ndim))
            norms = xp.sqrt(squares.sum(axis=axes, keepdims=True))   # (out, 1, ...)
            # c / max(norm, c) is exactly 1 for rows inside the ball, and no row divides by 0
            scale = c / xp.maximum(norms, c)
            xp.multiply(p.data, scale, out=p.data)

    def __repr__(self):
        return f"MaxNorm({len(self.params)} weights, max_norm={self.max_norm})"


def _gather(items):
    """The Parameters of a Module, a Tensor, or an iterable of Modules and Tensors."""
    if isinstance(items, Tensor):
        return [items]
    if callable(getattr(items, "parameters", None)):
        return list(items.parameters())
    try:
        items = list(items)
    except TypeError:
        raise TypeError("MaxNorm: expected a Module, a Parameter or an iterable of them, got "
                        f"{type(items).__name__}") from None
    params, seen = [], set()
    for item in items:
        if isinstance(item, Tensor):
            found = [item]
        elif callable(getattr(item, "parameters", None)):
            found = list(item.parameters())
        else:
            raise TypeError("MaxNorm: expected Modules or Parameters, got an item of type "
                            f"{type(item).__name__}")
        for p in found:
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params
