"""Embedding lookup: rows of a weight table gathered by integer indices."""

from minigrad.autograd import Function, constant_array
from minigrad.backend import scatter_add


class Embedding(Function):
    """Gather rows of a (num_embeddings, dim) table by integer index.

    It computes one_hot(index) @ weight without building the one-hot matrix.

    Forward:  y[..., :] = weight[index[...], :]
    Backward: grad_weight = zeros like weight, then grad_weight[index[...], :] += grad_out[..., :]
              A scatter-add: a row picked k times receives the sum of its k upstream
              gradients (a plain assignment would keep only one of them). Rows never picked
              get zero. The indices get no gradient.
    Shapes:   weight (V, D), index any shape (...) of integers in [0, V) -> y (..., D)
    Saves:    index, and weight's shape and dtype
    """

    def forward(self, weight, index):
        if weight.ndim != 2:
            raise ValueError(f"embedding: weight must be (num_embeddings, dim), got shape "
                             f"{weight.shape}")
        if index.dtype.kind not in "iu":
            raise TypeError(f"embedding: indices must be integers, got dtype {index.dtype}; "
                            "convert them with .astype(np.int64)")
        # int() copies one number to the host (a sync on the GPU): the price of a clear error
        # instead of an out-of-bounds read.
        if index.size and (int(index.min()) < 0 or int(index.max()) >= weight.shape[0]):
            raise IndexError(
                f"embedding: indices must lie in [0, {weight.shape[0]}) for a table of "
                f"{weight.shape[0]} rows, got values from {int(index.min())} to "
                f"{int(index.max())}; enlarge num_embeddings or fix the indices")
        self.index = index
        self.weight_shape, self.weight_dtype = weight.shape, weight.dtype
        return weight[index]

    def backward(self, grad_out):
        grad_weight = self.xp.zeros(self.weight_shape, dtype=self.weight_dtype)
        scatter_add(self.xp, grad_weight, self.index, grad_out)
        return grad_weight, None


def embedding(indices, weight):
    """Rows of ``weight`` picked by ``indices`` (PyTorch's argument order)."""
    index = constant_array(indices)
    if not hasattr(index, "dtype"):
        raise TypeError(f"embedding: indices must be an integer array or Tensor, got "
                        f"{type(indices).__name__}; wrap them with minigrad.Tensor(...)")
    return Embedding()(weight, index)
