"""Finite-difference gradient checking.

``gradcheck(fn, inputs)`` compares the gradient that backward computes with central
differences, in float64, contracted with a RANDOM upstream gradient ``g``:

    analytic_i = d <g, fn(x)> / d x_i      (one backward pass with grad=g)
    numeric_i  = (<g, fn(x + eps e_i)> - <g, fn(x - eps e_i)>) / (2 eps)

Why random ``g``: with all-ones upstream the check differentiates sum(fn(x)), which for
softmax is the constant 1, so a softmax backward with its sign flipped would still pass.

Why float64: central differences have error O(eps**2) from truncation plus O(ulp / eps) from
rounding. In float64 eps = 1e-6 leaves both near 1e-10; in float32 the rounding term alone is
about 1e-1 at that eps, and no eps makes both small, so float32 inputs are refused unless
``allow_float32=True``.

``numeric_gradient(fn, inputs, index)`` returns the numeric side alone, to compare with
other tools or to print while deriving a backward by hand.

Randomized ops must be deterministic inside ``fn``: pass a fixed ``mask=`` (or a generator
re-seeded identically on every call), so every evaluation sees the same mask.
"""

import numpy as np

from minigrad.autograd import no_grad
from minigrad.backend import as_numpy, get_xp, to_device
from minigrad.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with finite differences (the message says where)."""


def _inner(g, y):
    """<g, y> as a Python float, computed where y lives."""
    return float((g * y.data).sum())


def _evaluate(fn, inputs, g):
    with no_grad():
        return _inner(g, fn(*inputs))


def _input_label(i, x):
    name = f" '{x.name}'" if x.name else ""
    return f"input {i}{name} (shape {x.shape})"


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, grad_out=None, fast=False,
              n_projections=4, seed=0, allow_float32=False):
    """Check ``fn``'s backward against central finite differences.

    Args:
        fn:            function of Tensors returning one Tensor; must be deterministic.
        inputs:        the Tensors to call ``fn`` with; those with requires_grad are checked.
        eps:           finite-difference step.
        atol, rtol:    an element passes when |analytic - numeric| <= atol + rtol * |numeric|.
        grad_out:      upstream gradient; by default standard normal, seeded by ``seed``.
        fast:          instead of one pair of evaluations per element, compare
                       ``n_projections`` directional derivatives along random directions v:
                       <analytic, v> against (f(x + eps v) - f(x - eps v)) / (2 eps). Cheap for
                       large inputs; a wrong backward is still caught with probability 1.
        allow_float32: permit float32 inputs (then loosen atol and rtol yourself).

    Returns True, or raises GradcheckError naming the input, the element index, the analytic
    and numeric values and the relative error.
    """
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64 and not allow_float32:
            raise ValueError(
                f"gradcheck: {_input_label(i, inputs[i])} is {inputs[i].dtype}; finite "
                "differences need float64 to resolve a gradient (float32 rounding error at "
                "eps=1e-6 is ~0.1). Create the inputs with dtype=np.float64, or pass "
                "allow_float32=True with looser atol/rtol.")
    rng = np.random.default_rng(seed)

    for i in checked:
        inputs[i].grad = None
    y = fn(*inputs)
    if not isinstance(y, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(y).__name__}")
    if grad_out is None:
        g = to_device(rng.standard_normal(y.shape).astype(y.dtype), y.device)
    else:
        g = _upstream(grad_out, y)
    y.backward(g)
    analytic = {}
    for i in checked:
        grad = inputs[i].grad
        if grad is not None and grad.shape != inputs[i].shape:
            raise GradcheckError(
                f"gradcheck: backward gave a gradient of shape {grad.shape} for "
                f"{_input_label(i, inputs[i])}")
        analytic[i] = np.zeros(inputs[i].shape) if grad is None else as_numpy(grad)

    for i in checked:
        if fast:
            _check_projections(fn, inputs, g, i, analytic[i], eps, atol, rtol,
                               n_projections, rng)
        else:
            _check_elements(fn, inputs, g, i, analytic[i], eps, atol, rtol)
    return True


def numeric_gradient(fn, inputs, index=0, grad_out=None, eps=1e-6):
    """Central differences of <grad_out, fn(*inputs)> with respect to ``inputs[index]``.

    Returns a host float64 array of that input's shape. ``grad_out`` defaults to ones, which
    for a scalar ``fn`` is simply its gradient. This is the numeric side of ``gradcheck``.
    """
    inputs = list(inputs)
    with no_grad():
        y = fn(*inputs)
    g = get_xp(y.data).ones_like(y.data) if grad_out is None else _upstream(grad_out, y)
    return _central_differences(fn, inputs, g, index, eps)


def _upstream(grad_out, y):
    """``grad_out`` (a Tensor, a backend or host array, a list) as an array like y's data."""
    data = grad_out.data if isinstance(grad_out, Tensor) else grad_out
    return Tensor(data, device=y.device, dtype=y.dtype).data


def _central_differences(fn, inputs, g, i, eps):
    """(f(x + eps e_k) - f(x - eps e_k)) / (2 eps) for every element k of input i."""
    x = inputs[i].data
    numeric = np.zeros(x.shape)
    for flat in range(x.size):
        index = np.unravel_index(flat, x.shape)
        original = float(x[index])
        x[index] = original + eps
        plus = _evaluate(fn, inputs, g)
        x[index] = original - eps
        minus = _evaluate(fn, inputs, g)
        x[index] = original
        numeric[index] = (plus - minus) / (2 * eps)
    return numeric


def _check_elements(fn, inputs, g, i, analytic, eps, atol, rtol):
    """Central difference for every element of input i; report the worst offender."""
    x = inputs[i].data
    numeric = _central_differences(fn, inputs, g, i, eps)
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if np.any(excess > 0) or not np.all(np.isfinite(analytic)):
        worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(excess), excess, np.inf)),
                                 x.shape)
        raise GradcheckError(_report(
            f"{_input_label(i, inputs[i])} at element {tuple(int(k) for k in worst)}",
            analytic[worst], numeric[worst], atol, rtol,
            f"{int(np.sum(~(excess <= 0)))} of {x.size} elements out of tolerance"))


def _check_projections(fn, inputs, g, i, analytic, eps, atol, rtol, n_projections, rng):
    """Directional derivatives along random directions (``fast=True``)."""
    x = inputs[i]
    original = x.data
    for k in range(n_projections):
        v = rng.standard_normal(x.shape)
        v_dev = to_device(v.astype(x.dtype), x.device)
        x.data = original + eps * v_dev
        plus = _evaluate(fn, inputs, g)
        x.data = original - eps * v_dev
        minus = _evaluate(fn, inputs, g)
        x.data = original
        numeric = (plus - minus) / (2 * eps)
        predicted = float(np.sum(analytic * v))
        if not abs(predicted - numeric) <= atol + rtol * abs(numeric):
            raise GradcheckError(_report(
                f"{_input_label(i, inputs[i])} along random direction {k}",
                predicted, numeric, atol, rtol, "fast mode (random projections)"))


def _report(where, analytic, numeric, atol, rtol, summary):
    diff = abs(analytic - numeric)
    rel = diff / max(abs(analytic), abs(numeric), 1e-300)
    return (f"gradcheck failed for {where}: analytic {analytic:.10g}, numeric "
            f"{numeric:.10g}, |difference| {diff:.3g} > atol + rtol*|numeric| = "
            f"{atol + rtol * abs(numeric):.3g}, relative error {rel:.3g}; {summary}")
