"""Matrix products: matmul (2-D and batched, broadcasting batch axes) and linear."""

from minigrad.autograd import Function, sum_to


class MatMul(Function):
    """Matrix product, batched over leading axes (NumPy's ``@``).

    Forward:  y = a @ b            a: (..., n, k), b: (..., k, m) -> y: (..., n, m)
    Backward: grad_a = sum_to(grad_out @ b^T, a.shape)
              grad_b = sum_to(a^T @ grad_out, b.shape)     (^T swaps the last two axes)
    Shapes:   batch axes broadcast as in NumPy; a 1-D a is read as (1, k) and a 1-D b as
              (k, 1), and the added axis is dropped from y, as NumPy does.
    Saves:    a and b (as 2-D-or-more views)
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: inputs must have at least one dimension; use * for scalars")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last axis of "
                f"a ({a.shape[-1]}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} "
                f"axis of b ({b.shape[-2 if b.ndim > 1 else 0]})")
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a = a.reshape(1, -1) if a.ndim == 1 else a
        self.b = b.reshape(-1, 1) if b.ndim == 1 else b
        y = self.a @ self.b
        self.y_shape = y.shape
        if a.ndim > 1 and b.ndim > 1:
            return y
        return y.reshape(_numpy_matmul_shape(y.shape, a.ndim, b.ndim))

    def backward(self, grad_out):
        a, b = self.a, self.b
        grad_out = grad_out.reshape(self.y_shape)   # put back the axes 1-D inputs dropped
        need_a, need_b = self.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            grad_a = sum_to(grad_out @ b.swapaxes(-1, -2), a.shape).reshape(self.a_shape)
        if need_b:
            grad_b = sum_to(a.swapaxes(-1, -2) @ grad_out, b.shape).reshape(self.b_shape)
        return grad_a, grad_b


def matmul(a, b):
    return MatMul()(a, b)


class Linear(Function):
    """Affine map in the PyTorch weight layout, as one op (two BLAS calls in backward).

    Forward:  y = x @ w^T + b       x: (..., in), w: (out, in), b: (out,) or None
    Backward: grad_x = grad_out @ w
              grad_w = grad_out^T @ x      (over all leading axes flattened into rows)
              grad_b = sum of grad_out over all leading axes
    Saves:    x and w
    """

    def forward(self, x, w, b=None):
        if w.ndim != 2 or x.shape[-1] != w.shape[1]:
            raise ValueError(
                f"linear: input of shape {x.shape} does not fit weight of shape {w.shape}: "
                f"the input's last axis must equal in_features (weight.shape[1])")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"linear: bias shape {b.shape} must be ({w.shape[0]},)")
        self.x, self.w = x, w
        # (..., in) -> (rows, in): one 2-D BLAS call instead of a batched matmul per leading row
        y = x.reshape(-1, w.shape[1]) @ w.T
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, grad_out):
        x, w = self.x, self.w
        g2 = grad_out.reshape(-1, w.shape[0])   # (..., out) -> (rows, out)
        grad_x = (g2 @ w).reshape(x.shape) if self.needs_input_grad[0] else None
        grad_w = g2.T @ x.reshape(-1, w.shape[1]) if self.needs_input_grad[1] else None
        if len(self.inputs) == 2:
            return grad_x, grad_w
        grad_b = g2.sum(axis=0) if self.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x, weight, bias=None):
    if bias is None:
        return Linear()(x, weight)
    return Linear()(x, weight, bias)


def _numpy_matmul_shape(y2_shape, a_ndim, b_ndim):
    """Drop the axes that were added for 1-D inputs, as NumPy's a @ b does."""
    shape = list(y2_shape)
    if b_ndim == 1:
        del shape[-1]
    if a_ndim == 1:
        del shape[-1 if b_ndim == 1 else -2]
    return tuple(shape)
