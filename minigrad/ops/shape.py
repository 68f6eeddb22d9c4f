"""Shape ops: reshape, transpose, squeeze, unsqueeze, getitem, concatenate, stack.

None of them changes a value, so each backward only moves gradient entries back to where the
forward took them from.
"""

from minigrad.autograd import Function, constant_array
from minigrad.backend import scatter_add


class Reshape(Function):
    """Reshape (same elements, C order).

    Forward:  y = x.reshape(shape)
    Backward: grad_x = grad_out.reshape(x.shape)
    Saves:    x's shape
    """

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, grad_out):
        return grad_out.reshape(self.x_shape)


def reshape(x, shape):
    return Reshape(shape)(x)


class Transpose(Function):
    """Permute axes (reverse them when axes is None).

    Forward:  y = x.transpose(axes)
    Backward: grad_x = grad_out.transpose(inverse permutation of axes)
    Saves:    the inverse permutation
    """

    def __init__(self, axes=None):
        self.axes = None if axes is None else tuple(axes)

    def forward(self, x):
        axes = self.axes or tuple(reversed(range(x.ndim)))
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {x.ndim} axes")
        self.inverse = tuple(sorted(range(x.ndim), key=lambda i: axes[i] % x.ndim))
        return x.transpose(axes)

    def backward(self, grad_out):
        return grad_out.transpose(self.inverse)


def transpose(x, axes=None):
    return Transpose(axes)(x)


class Squeeze(Function):
    """Remove length-1 axes (all of them, or the given ones).

    Forward:  y = x.squeeze(axis)
    Backward: grad_x = grad_out.reshape(x.shape)
    Saves:    x's shape
    """

    def __init__(self, axis=None):
        self.axis = axis

    def forward(self, x):
        self.x_shape = x.shape
        return x.squeeze(self.axis)

    def backward(self, grad_out):
        return grad_out.reshape(self.x_shape)


def squeeze(x, axis=None):
    return Squeeze(axis)(x)


class Unsqueeze(Function):
    """Insert a length-1 axis at position ``axis``.

    Forward:  y = expand_dims(x, axis)
    Backward: grad_x = grad_out.reshape(x.shape)
    Saves:    x's shape
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.expand_dims(x, self.axis)

    def backward(self, grad_out):
        return grad_out.reshape(self.x_shape)


def unsqueeze(x, axis):
    return Unsqueeze(axis)(x)


def _picks_each_once(index):
    """True when no element can be picked twice: ints, slices, None, Ellipsis, boolean masks.

    Integer arrays can repeat an index (x[[0, 0]]), so they need a scatter-add in backward.
    """
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis
               or getattr(i, "dtype", None) == bool for i in items)


def _index_on_device(xp, index):
    """The index with its host arrays and lists moved to the device of the indexed array.

    The move is explicit (CuPy refuses an implicit one), and backward scatters with it.
    """
    if isinstance(index, tuple):
        return tuple(_index_on_device(xp, i) for i in index)
    if isinstance(index, list) or hasattr(index, "dtype"):
        return xp.asarray(index)
    return index


class GetItem(Function):
    """Indexing: slices, integers and integer (or boolean) arrays, as NumPy.

    Forward:  y = x[index]
    Backward: grad_x = zeros like x, then grad_x[index] += grad_out
              With integer arrays one element can be picked several times, so the update
              is a scatter-add that accumulates repeats (a plain assignment would keep only
              one of them). Slices, ints and boolean masks pick each element once, and a
              plain assignment suffices.
    Saves:    x's shape and dtype, the index
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        self.index = _index_on_device(self.xp, self.index)
        return x[self.index]

    def backward(self, grad_out):
        grad_x = self.xp.zeros(self.x_shape, dtype=self.x_dtype)
        if _picks_each_once(self.index):
            grad_x[self.index] = grad_out
        else:
            scatter_add(self.xp, grad_x, self.index, grad_out)
        return grad_x


def getitem(x, index):
    if isinstance(index, tuple):
        index = tuple(constant_array(i) for i in index)
    else:
        index = constant_array(index)
    return GetItem(index)(x)


class Concatenate(Function):
    """Join tensors along an existing axis.

    Forward:  y = concatenate([x_1, ..., x_n], axis)
    Backward: grad_x_i = the slice of grad_out that x_i filled
    Saves:    the split points along the axis
    """

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        sizes = [x.shape[self.axis] for x in xs]
        self.splits = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, grad_out):
        return tuple(self.xp.split(grad_out, self.splits, axis=self.axis))


def concatenate(tensors, axis=0):
    return Concatenate(axis)(*tensors)


class Stack(Function):
    """Join same-shaped tensors along a new axis.

    Forward:  y = stack([x_1, ..., x_n], axis)
    Backward: grad_x_i = grad_out taken at position i of the new axis
    Saves:    nothing but the axis
    """

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        y = self.xp.stack(xs, axis=self.axis)
        self.axis_ = self.axis % y.ndim
        return y

    def backward(self, grad_out):
        moved = self.xp.moveaxis(grad_out, self.axis_, 0)
        return tuple(moved[i] for i in range(moved.shape[0]))


def stack(tensors, axis=0):
    return Stack(axis)(*tensors)
