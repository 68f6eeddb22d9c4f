"""DataLoader: mini-batches of an in-memory dataset, in a seeded order that can be resumed.

The whole dataset is converted once, up front, to one C-contiguous float array (uint8 pixels
become ``(x / 255 - mean) / std``); each batch is then one fancy-indexing gather of whole rows
and one transfer to the device.

Shuffling. The loader draws one key from its generator when it is built and turns it into a
64-bit seed. The order of epoch ``e`` is :func:`permutation` under the key (seed, e), so it
depends on nothing but that seed and the epoch number: a run that saved ``state_dict()``
mid-epoch gets exactly the remaining batches back after ``load_state_dict()``, whatever else
has drawn random numbers since.
"""

import math

import numpy as np

from minigrad.backend import check_device, to_device
from minigrad.random import StreamKey, default_generator, random_bits
from minigrad.tensor import Tensor

__all__ = ["DataLoader", "permutation"]


def permutation(n, key):
    """A random permutation of ``range(n)`` (int64) from a StreamKey or Generator.

    Each element gets a 64-bit random sort key made of two 32-bit draws, and the permutation
    is their argsort. With 64 bits, ties are vanishingly rare (about n**2 / 2**65), and the
    stable sort breaks them by position, so the result is the same on every machine.
    """
    bits = random_bits(np, (n, 2), key).astype(np.uint64)
    sort_keys = (bits[:, 0] << np.uint64(32)) | bits[:, 1]
    return np.argsort(sort_keys, kind="stable")


def _as_floats(images, normalize, dtype):
    """One float copy of ``images``: uint8 scaled by 1/255, then (x - mean) / std."""
    x = images.astype(dtype)   # always a copy: the in-place steps below never touch images
    if images.dtype == np.uint8:
        x /= 255
    if normalize is not None:
        mean, std = normalize
        if not std > 0:
            raise ValueError(f"normalize=(mean, std) needs std > 0, got {std}")
        x -= mean
        x /= std
    return x


class DataLoader:
    """Iterate over ``(x, y)`` batches as minigrad Tensors on ``device``.

    Args:
        images:     NumPy array (N, ...): uint8 pixels (scaled by 1/255) or floats (kept).
        labels:     NumPy integer array (N,); batches carry them as int64.
        batch_size: samples per batch; the last batch is smaller unless ``drop_last``.
        shuffle:    a new random order every epoch; False keeps the given order.
        drop_last:  drop the last incomplete batch.
        generator:  minigrad.random.Generator to draw the loader's seed from (one draw, at
                    construction, only if shuffling); default: the default generator.
        device:     "cpu", "cuda" or "strict": where batches are sent.
        normalize:  None or (mean, std), applied after the 1/255 scaling; per-dataset values
                    are in ``minigrad.data.NORMALIZATION``.
        flatten:    reshape each sample to a vector: x is (B, prod(...)).
        dtype:      float dtype of x (float32 by default).

    Iteration resumes where it stopped: ``epoch`` and ``position`` (the next batch index)
    advance as batches are handed out, and the epoch ends after its last batch. Save them
    with ``state_dict()``; ``load_state_dict()`` then replays exactly the same batches. One
    loader serves one iteration at a time.
    """

    def __init__(self, images, labels, batch_size=64, shuffle=True, drop_last=False,
                 generator=None, device="cpu", normalize=None, flatten=False,
                 dtype=np.float32):
        if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
            raise TypeError("DataLoader takes NumPy arrays for images and labels (host "
                            "memory); batches are moved to the device one at a time")
        if images.ndim < 1 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"expected images (N, ...) and labels (N,), got shapes "
                             f"{images.shape} and {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers (class indices), got {labels.dtype}")
        is_int = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
        if not is_int or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(labels) == 0 or (drop_last and len(labels) < batch_size):
            raise ValueError(f"{len(labels)} samples make no batch of {batch_size} with "
                             f"drop_last={drop_last}; pass more data or a smaller batch_size")
        if np.dtype(dtype).kind != "f":
            raise TypeError(f"dtype must be a floating-point type such as np.float32, "
                            f"got {dtype}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = check_device(device)
        self.x = _as_floats(images, normalize, np.dtype(dtype))
        if flatten:
            self.x = self.x.reshape(len(self.x), -1)
        self.y = labels.astype(np.int64)
        self.seed = None
        if self.shuffle:
            generator = default_generator() if generator is None else generator
            key = generator.next_key()
            self.seed = (key.k1 << 32) | key.k0
        self.epoch = 0
        self.position = 0

    @property
    def num_samples(self):
        return len(self.y)

    def __len__(self):
        """Number of batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def order(self, epoch):
        """The sample indices of ``epoch``, in the order they are served."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return permutation(self.num_samples, StreamKey.from_seed(self.seed, epoch))

    def __iter__(self):
        order = self.order(self.epoch)
        n_batches = len(self)
        for k in range(self.position, n_batches):
            index = order[k * self.batch_size:(k + 1) * self.batch_size]
            # advance first: a checkpoint taken while this batch is in use resumes after it
            if k + 1 == n_batches:
                self.epoch, self.position = self.epoch + 1, 0
            else:
                self.position = k + 1
            yield self._batch(index)

    def _batch(self, index):
        x = to_device(self.x[index], self.device)   # one gather, one transfer
        y = to_device(self.y[index], self.device)
        return Tensor(x), Tensor(y)

    def state_dict(self):
        """Where the loader stands: the epoch, the next batch, and what fixes the order."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_samples": self.num_samples, "batch_size": self.batch_size}

    def load_state_dict(self, state):
        """Resume from ``state_dict()``: the next batches are those that would have come."""
        for name in ("num_samples", "batch_size"):
            if state[name] != getattr(self, name):
                raise ValueError(
                    f"state was saved with {name}={state[name]}, this loader has "
                    f"{getattr(self, name)}; batches would differ, so build the loader with "
                    f"the same data and batch_size")
        if (state["seed"] is None) == self.shuffle:
            raise ValueError("state and loader disagree on shuffle; build the loader with "
                             f"shuffle={state['seed'] is not None}")
        if not 0 <= state["position"] < max(len(self), 1):
            raise ValueError(f"position {state['position']} is outside 0..{len(self) - 1}")
        self.seed = state["seed"]
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
