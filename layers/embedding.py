"""Embedding layer: a learnable table of vectors looked up by integer index."""

import numpy as np

from layers.module import Module, Parameter
from minigrad import random
from minigrad.backend import xp_for_device
from minigrad.ops.embedding import embedding


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table; y = weight[indices].

    Args:
        num_embeddings: the number of rows (vocabulary size); indices must lie in
                    [0, num_embeddings).
        embedding_dim: the length of each vector.
        device, dtype: where and in which dtype the table lives.
        generator:  a minigrad.Generator for the initial weights (default: the default one).

    Shapes: indices (...) of integers -> y (..., embedding_dim).

    Initialisation (PyTorch's default): standard normal entries.
    The gradient is a scatter-add: a row used k times in a batch gets the sum of its k
    gradients; unused rows get zero.

    Reference: Bengio et al., "A Neural Probabilistic Language Model" (JMLR 2003),
    https://www.jmlr.org/papers/v3/bengio03a.html
    """

    def __init__(self, num_embeddings, embedding_dim, device="cpu", dtype=np.float32,
                 generator=None):
        if num_embeddings <= 0 or embedding_dim <= 0:
            raise ValueError(f"Embedding: sizes must be positive, got ({num_embeddings}, "
                             f"{embedding_dim})")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        xp = xp_for_device(device)
        shape = (num_embeddings, embedding_dim)
        self.weight = Parameter(random.normal(xp, shape, generator, dtype=np.float64)
                                .astype(dtype))

    def forward(self, indices):
        return embedding(indices, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
