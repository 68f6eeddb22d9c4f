"""Reverse-mode autodiff: the ``Function`` base class, grad mode, and the backward walk.

Every op (built in or user-defined) is a subclass of ``Function`` with two methods on raw
backend arrays::

    class Square(minigrad.Function):
        '''Forward: y = x**2.  Backward: grad_x = grad_out * 2x.  Saves: x.'''
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, grad_out):
            return grad_out * 2 * self.x

    y = Square()(t)        # t: a Tensor; y: a Tensor whose creator is this Square

Calling a Function resolves the array module ``self.xp`` from the inputs (NumPy, CuPy or the
strict test backend), runs ``forward`` and, when any input requires grad (and grad mode is
on), records the call in the graph. ``Tensor.backward`` walks the recorded graph in reverse
topological order, iteratively (no recursion limit), calls each ``backward`` once with the
summed upstream gradient, and then releases the graph: saved arrays are freed, and a second
backward through it raises an error unless ``retain_graph=True`` was given.

``backward`` returns one gradient per input, in input order (a bare array when there is one
input), each with its input's shape; it may return None for an input that needs no gradient
(``self.needs_input_grad[i]`` says which do). Higher-order gradients are out of scope: backward
works on arrays, not Tensors, so it can be read as plain math.
"""

import contextlib

import numpy as np

from minigrad.backend import _XP_BY_TYPE, get_xp

_grad_enabled = True
REGISTRY = {}   # op name -> Function subclass, for every op defined in minigrad or layers


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Context in which ops record no graph (evaluation, optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def sum_to(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape``.

    Forward broadcasting copies an input along new leading axes and along axes where it has
    length 1; the backward of a copy is a sum over those axes. Every op that broadcasts calls
    this one helper.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class Function:
    """Base class of every op: subclass it and write ``forward`` and ``backward`` on arrays.

    Attributes set by ``__call__``:
        xp:                the array module of the inputs (numpy, cupy, or the strict one)
        inputs:            the inputs as given (Tensors or constants), kept for backward
        needs_input_grad:  tuple of bools, one per input
    """

    _tensor_type = None   # set to Tensor by minigrad.tensor (the two modules refer to each other)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.split(".")[0] in ("minigrad", "layers"):
            REGISTRY[cls.__name__] = cls

    def __call__(self, *inputs):
        tensor_type = self._tensor_type
        arrays = [x.data if isinstance(x, tensor_type) else _plain_constant(x) for x in inputs]
        xp = self.xp = get_xp(*arrays)
        out = self.forward(*arrays)
        if out.__class__ not in _XP_BY_TYPE:
            out = xp.asarray(out)   # NumPy reductions give scalars; keep 0-d arrays
        result = tensor_type.__new__(tensor_type)
        result.data = out
        result.grad = None
        result.name = None
        result.creator = None
        result.requires_grad = False
        if _grad_enabled:
            needs = tuple([isinstance(x, tensor_type) and x.requires_grad for x in inputs])
            if True in needs:
                self.inputs = inputs
                self.needs_input_grad = needs
                result.creator = self
                result.requires_grad = True
        return result

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} must implement forward(*arrays)")

    def backward(self, grad_out):
        raise NotImplementedError(
            f"{type(self).__name__} must implement backward(grad_out) to be differentiated")

    def release(self):
        """Free saved arrays; a later backward through this node raises an error."""
        self.__dict__.clear()
        self.inputs = None


def _plain_constant(x):
    """A NumPy scalar as the Python number it holds; anything else unchanged.

    NumPy 2 (NEP 50) lets a Python float adopt the array's dtype, but an np.float64 scalar
    promotes a float32 array to float64: ``x * np.float64(2)`` would silently leave float32.
    """
    return x.item() if isinstance(x, np.generic) else x


def constant_array(x):
    """The array inside a Tensor used as a constant (labels, masks, indices); else x itself."""
    return x.data if isinstance(x, Function._tensor_type) else x


def _topological_order(root):
    """Functions reachable from ``root``, each after every function that feeds it.

    Depth-first post-order with an explicit stack, so a graph thousands of ops deep needs no
    recursion. A function is marked visited when it is expanded, not when it is pushed:
    marking on push could append a function before a second path to it is explored.
    """
    tensor_type = Function._tensor_type
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        f, inputs_done = stack.pop()
        if inputs_done:
            order.append(f)
            continue
        if f in visited:
            continue
        visited.add(f)
        if f.inputs is None:
            raise RuntimeError(
                f"trying to backward through the graph a second time (through "
                f"{type(f).__name__}): its saved arrays were freed by the first backward. "
                "Pass retain_graph=True to the first backward() if you need to call it twice.")
        stack.append((f, True))
        for x in f.inputs:
            creator = x.creator if isinstance(x, tensor_type) else None
            if creator is not None and creator not in visited:
                stack.append((creator, False))
    return order


def run_backward(root_fn, grad, retain_graph=False):
    """Backpropagate ``grad`` from the output of ``root_fn`` to every leaf that requires grad.

    ``grads`` holds, per function, the sum of the gradients its consumers have sent so far;
    the topological order guarantees that all of them have arrived before it runs.
    """
    grads = {root_fn: grad}     # Functions hash by identity
    for f in reversed(_topological_order(root_fn)):
        grad_inputs = _input_gradients(f, grads.pop(f, None))
        for x, g, needed in zip(f.inputs, grad_inputs, f.needs_input_grad):
            if not needed or g is None:
                continue
            creator = x.creator
            if creator is None:
                x.grad = g if x.grad is None else x.grad + g
            else:
                grads[creator] = g if creator not in grads else grads[creator] + g
        if not retain_graph:
            f.release()


def _input_gradients(f, grad_out):
    """``f.backward(grad_out)`` as a tuple with one entry per input.

    ``grad_out`` is None when every consumer of f's output returned None for it: then no
    gradient flows through f at all.
    """
    if grad_out is None:
        return ()
    grad_inputs = f.backward(grad_out)
    if grad_inputs.__class__ is not tuple:
        grad_inputs = (grad_inputs,)
    if len(grad_inputs) != len(f.inputs):
        raise RuntimeError(
            f"{type(f).__name__}.backward returned {len(grad_inputs)} gradients for "
            f"{len(f.inputs)} inputs; return one per input (None where not needed)")
    return grad_inputs
